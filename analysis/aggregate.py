"""Pure statistics on the tidy run frames: bootstrap intervals, tests and per-run measures.

Every function takes DataFrames or arrays and returns DataFrames, tuples or dicts; there is no
I/O, plotting or tracking here (after the ``metrics.py`` / ``library.py`` split of rliable,
Agarwal et al. 2021). Frames follow the tidy contract of ``analysis.load``: one row per run,
per (run, length) or per (run, target position). The seed-level procedures are built on
these: summaries over seeds in ``analysis.seeds``, effects, tests and pairwise comparisons
in ``analysis.effects``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from attnstudy.schema import OOD_SEQ_ACC

CONFIGURATION_COLUMNS = (  # what identifies a configuration, the seed not included
    "task",
    "arch",
    "score",
    "position",
    "randomized",
    "heads",
    "d_model",
    "n_layers",
    "lr",
    "train_max_len",
    "eval_max_len",
)
PAIR_COLUMNS = (*CONFIGURATION_COLUMNS, "seed")  # a unit: one configuration and seed
N_BOOT = 2000
MAX_PERMUTATION_N = 20


def ok_runs(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Runs with status "ok" and, when ``metric`` is given, a finite value of it."""
    ok = runs[runs["status"] == "ok"]
    return ok if metric is None else ok[ok[metric].notna()]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., np.ndarray] = np.mean,
    n_boot: int = N_BOOT,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (Efron & Tibshirani 1993) interval of ``stat`` over ``values``.

    NaNs are dropped. ``stat`` must accept ``axis=`` (numpy reductions do). One value gives
    ``(v, v)``; no values give ``(nan, nan)``. Over per-seed values this is the interval over
    seeds: a resample draws seed ids, each with everything that seed ran.
    """
    x = _finite(values)
    if x.size <= 1:
        v = float(x[0]) if x.size else np.nan
        return v, v
    rng = np.random.default_rng(seed)
    return _percentiles(_resampled(x, stat, n_boot, rng), alpha)


def bootstrap_diff_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    stat: Callable[..., np.ndarray] = np.mean,
    n_boot: int = N_BOOT,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(a) - stat(b)`` for independent samples.

    Each sample is resampled on its own (two-sample bootstrap); NaNs are dropped and an empty
    sample gives ``(nan, nan)``.
    """
    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    boot_x = _resampled(x, stat, n_boot, rng)
    return _percentiles(boot_x - _resampled(y, stat, n_boot, rng), alpha)


def _resampled(x: np.ndarray, stat: Callable[..., np.ndarray], n_boot: int, rng) -> np.ndarray:
    """``stat`` of each of ``n_boot`` resamples of ``x`` drawn with replacement: (n_boot,)."""
    return stat(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)


def _percentiles(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def cliffs_delta(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cliff's delta (Cliff 1993): P(A > B) - P(A < B) over all pairs; NaN if a side is empty."""
    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return np.nan
    return float(np.sign(x[:, None] - y[None, :]).mean())


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (statsmodels ``multipletests``); NaNs stay NaN."""
    adjusted = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method="holm")[1]
    return adjusted


def mannwhitney_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p of samples ``x`` and ``y`` (permutation distribution up to
    MAX_PERMUTATION_N values, asymptotic beyond); NaN if a side is empty, 1 if all are equal."""
    if x.size == 0 or y.size == 0:
        return np.nan
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0
    small = min(x.size, y.size) >= 2 and x.size + y.size <= MAX_PERMUTATION_N
    method = stats.PermutationMethod(n_resamples=9999, rng=0) if small else "asymptotic"
    return float(stats.mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue)


def kruskal_p(runs: pd.DataFrame, axis: str, metric: str) -> float:
    """Kruskal-Wallis H test p-value of ``metric`` across levels of ``axis`` (ok runs).

    NaN with fewer than two non-empty levels; 1.0 when every value is identical.
    """
    ok = ok_runs(runs, metric)
    groups = [g[metric].to_numpy(float) for _, g in ok.groupby(axis)]
    if len(groups) < 2:
        return np.nan
    if np.ptp(np.concatenate(groups)) == 0:
        return 1.0
    return float(stats.kruskal(*groups).pvalue)


def mean_reciprocal_rank(
    runs: pd.DataFrame,
    axis: str = "position",
    metric: str = OOD_SEQ_ACC,
    over: str = "task",
    fixed: Sequence[str] = (),
) -> pd.DataFrame:
    """Mean reciprocal rank of the levels of ``axis`` (Kazemnejad et al. 2023, Sec. 4).

    Within each stratum (``over`` plus ``fixed`` columns) levels are ranked by their mean
    ``metric`` over ok runs, rank 1 = best; tied levels all get the best (minimum) rank of the
    tie. Returns one row per level: ``mrr`` (mean of 1/rank over the strata where the level ran)
    and ``n_strata``, sorted best first.
    """
    strata = [over, *fixed]
    means = ok_runs(runs, metric).groupby([*strata, axis], dropna=False)[metric].mean()
    ranks = means.groupby(level=strata, dropna=False).rank(method="min", ascending=False)
    reciprocal = (1.0 / ranks).groupby(level=axis)
    table = pd.DataFrame({"mrr": reciprocal.mean(), "n_strata": reciprocal.size()})
    return table.sort_values("mrr", ascending=False).reset_index()


def length_trend(lengths: pd.DataFrame, metric: str = "seq_acc") -> pd.Series:
    """Spearman rank correlation of ``metric`` with ``length``, one value per run_id.

    Negative means accuracy falls as inputs grow. A run whose accuracy is the same at every
    length has no trend and gets 0; a run with fewer than two finite lengths gets NaN.
    """
    return pd.Series(
        {run: _spearman(g["length"], g[metric]) for run, g in lengths.groupby("run_id")},
        name=f"{metric}_length_rho",
        dtype=float,
    )


def source_position_gap(
    positions: pd.DataFrame, mirrored: bool = False, fraction: float = 0.25
) -> pd.Series:
    """Per run_id: token accuracy at the earliest minus the latest input positions, compared
    within each in-distribution length, then averaged over lengths.

    ``positions`` holds split "id" rows with ``length``, ``target_pos`` and ``token_acc``.
    Target position i of length L copies input position i (``mirrored``: L − 1 − i, as in
    reverse); its relative input position is (i + ½)/L. Early: ≤ ``fraction``; late: ≥
    1 − ``fraction``; a length without both is skipped. Negative means the earliest input
    is reproduced worst; NaN without a usable length."""
    rows = positions[(positions["split"] == "id") & (positions["target_pos"] < positions["length"])]
    source = rows["target_pos"] + 0.5
    relative = (rows["length"] - source if mirrored else source) / rows["length"]
    part = np.select([relative <= fraction, relative >= 1 - fraction], ["early", "late"], "")
    rows = rows.assign(part=part)[part != ""]
    by_length = rows.groupby(["run_id", "length", "part"])["token_acc"].mean().unstack("part")
    gap = by_length.get("early", np.nan) - by_length.get("late", np.nan)
    runs = positions["run_id"].unique()
    if not isinstance(gap, pd.Series):
        return pd.Series(np.nan, index=runs, name="early_minus_late", dtype=float)
    gap = gap.groupby(level="run_id").mean()  # NaN lengths (one part only) are skipped
    return gap.reindex(runs).rename("early_minus_late").astype(float)


def long_length_accuracy(lengths: pd.DataFrame, metric: str = "seq_acc") -> pd.Series:
    """Per run_id: mean ``metric`` over the longer half of the training lengths,
    train_max_len / 2 < length ≤ train_max_len."""
    return accuracy_between(lengths, 0.5, 1.0, metric).rename(f"long_id_{metric}")


def accuracy_between(
    lengths: pd.DataFrame, above: float, upto: float, metric: str = "seq_acc"
) -> pd.Series:
    """Per run_id: mean ``metric`` over the lengths in (above·L, upto·L], L the run's longest
    training length."""
    longest = lengths["train_max_len"]
    rows = lengths[(lengths["length"] > above * longest) & (lengths["length"] <= upto * longest)]
    return rows.groupby("run_id")[metric].mean()


def extrapolation_lengths(lengths: pd.DataFrame, threshold: float) -> pd.Series:
    """Per run_id: the longest length up to which every length has exact match ≥
    ``threshold`` (0 if the shortest misses it)."""
    ordered = lengths.sort_values(["run_id", "length"]).astype({"seq_acc": float})
    holds = ordered.groupby("run_id")["seq_acc"].cummin() >= threshold
    reached = ordered["length"].where(holds, 0)
    return reached.groupby(ordered["run_id"]).max()


def _finite(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def _spearman(x: pd.Series, y: pd.Series) -> float:
    finite = x.notna() & y.notna()
    if finite.sum() < 2:
        return np.nan
    if np.ptp(y[finite]) == 0:
        return 0.0
    return float(stats.spearmanr(x[finite], y[finite]).statistic)
