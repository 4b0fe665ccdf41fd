"""Pure statistics on the tidy run frames: bootstrap intervals, summaries and tests.

Every function takes DataFrames or arrays and returns DataFrames, tuples or dicts; there is no
I/O, plotting or tracking here (after the ``metrics.py`` / ``library.py`` split of rliable,
Agarwal et al. 2021). Frames follow the tidy contract of ``analysis.load``: one row per run,
per (run, length) or per (run, target position).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from attnstudy.analysis.effects import (
    MIN_SEEDS,
    NEAR_OOD,
    accuracy_between,
    seed_interval,
    sign_flip_p,
    smallest_p,
)
from attnstudy.schema import EXTRAPOLATION_LEN, ID_SEQ_ACC, ID_TOKEN_ACC, OOD_SEQ_ACC, OOD_TOKEN_ACC

CONFIG_COLUMNS = (
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
PAIR_COLUMNS = (*CONFIG_COLUMNS, "seed")
SUMMARY_METRICS = (
    ID_SEQ_ACC,
    NEAR_OOD,  # the claims' primary: exact match over L < length ≤ 2L
    OOD_SEQ_ACC,
    ID_TOKEN_ACC,
    OOD_TOKEN_ACC,
    EXTRAPOLATION_LEN,
)
MAX_PERMUTATION_N = 20

METHODS_TEXT = f"""\
Confidence intervals of a mean are 95% percentile bootstrap intervals over seeds (2,000 \
resamples, fixed seed); runs that diverged or failed are counted but excluded from means. The seed \
is the unit of every test: seed s draws the same training batches and test examples in every \
configuration, so configurations run with one seed are not independent replicates. A difference \
between two levels of a factor is therefore computed per seed: runs are matched on every other \
configuration value and the seed, each seed's matched differences are averaged over \
configurations, and the exact sign-flip permutation test (all 2^n sign patterns of the n per-seed \
differences; two-sided) gives p. It assumes only that, with no difference, each seed's difference \
is as likely negative as positive, so it stays valid at 3 seeds and for outcomes where some seeds \
learn and others do not. Its interval resamples seed ids with replacement (each drawn seed brings \
all its configurations). When fewer than {MIN_SEEDS} seeds have runs at both levels, each \
level's runs are averaged per seed and the two-sided Mann-Whitney U test compares those per-seed \
means (permutation distribution, seeds as units) with an independent two-sample bootstrap \
interval. Effect sizes are the mean difference and Cliff's delta, P(A > B) - P(A < B) over the \
compared values. Each comparison states its smallest attainable p, the p its test gives the most \
extreme data possible at its number of seeds (three seeds: 2/2^3 = 0.25; five: 0.0625): where \
that is not below 0.05 the test cannot reject whatever the data, and the interval is the \
comparison's evidence. p-values within one table are Holm-corrected (Holm 1979) over all its \
comparisons: each table is one family (the claims' verdicts form their own). A test with an empty \
side has an undefined p (NaN); identical samples give p = 1. Mean reciprocal rank (Kazemnejad et \
al. 2023) ranks the levels of a factor by mean metric within each task and architecture (rank 1 = \
best, ties share the best of their ranks), plain and randomized positions apart, and averages \
1/rank over the cells where the level ran."""


def ok_runs(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Runs with status "ok" and, when ``metric`` is given, a finite value of it."""
    ok = runs[runs["status"] == "ok"]
    return ok if metric is None else ok[ok[metric].notna()]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., np.ndarray] = np.mean,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (Efron & Tibshirani 1993) interval of ``stat`` over ``values``.

    NaNs are dropped. ``stat`` must accept ``axis=`` (numpy reductions do). One value gives
    ``(v, v)``; no values give ``(nan, nan)``.
    """
    x = _finite(values)
    if x.size <= 1:
        v = float(x[0]) if x.size else np.nan
        return v, v
    rng = np.random.default_rng(seed)
    boot = stat(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_diff_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    stat: Callable[..., np.ndarray] = np.mean,
    n_boot: int = 2000,
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
    boot_x = stat(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)
    boot_y = stat(y[rng.integers(0, y.size, size=(n_boot, y.size))], axis=1)
    low, high = np.quantile(boot_x - boot_y, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def cliffs_delta(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cliff's delta (Cliff 1993): P(A > B) - P(A < B) over all pairs; NaN if a side is empty."""
    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return np.nan
    return float(np.sign(x[:, None] - y[None, :]).mean())


def summary_table(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group: run counts by status, then mean, bootstrap CI and max over seeds of each metric.

    Columns: ``by``, ``n_seeds`` (ok runs), ``n_diverged``, ``n_failed`` and, for each metric in
    ``SUMMARY_METRICS``, ``<metric>_mean``, ``_ci_low``, ``_ci_high``, ``_max`` over ok runs.
    """
    rows = []
    for key, group in runs.groupby(by, dropna=False, sort=True):
        ok = ok_runs(group)
        row = dict(zip(by, key, strict=True))
        row["n_seeds"] = len(ok)
        row["n_diverged"] = int((group["status"] == "diverged").sum())
        row["n_failed"] = int((group["status"] == "failed").sum())
        for metric in SUMMARY_METRICS:
            row.update(_describe(ok[metric], metric))
        rows.append(row)
    return pd.DataFrame(rows)


def compare(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, pair_on: Sequence[str] = ("seed",)
) -> dict[str, object]:
    """Two-sided test of a difference in ``metric`` between run sets ``a`` and ``b`` (A − B),
    seeds as units (see ``METHODS_TEXT``).

    Runs are matched on ``pair_on`` (which must name "seed"); with at least ``MIN_SEEDS``
    seeds matched, each seed's differences are averaged and the sign-flip test and a bootstrap
    over seeds run on them; otherwise Mann-Whitney U compares the per-seed means of each side.
    Returns test name, seeds and runs, means (over seeds), the mean difference with its CI,
    Cliff's delta, the raw p-value and ``min_p``, the smallest p the same test gives at these
    numbers of seeds (to the most extreme data possible).
    """
    a, b = ok_runs(a, metric), ok_runs(b, metric)
    diffs = _seed_differences(a, b, metric, list(pair_on))
    if len(diffs) >= MIN_SEEDS:
        x, y = diffs["a"].to_numpy(float), diffs["b"].to_numpy(float)
        d = x - y
        test, p, ci, min_p = "sign-flip", sign_flip_p(d), seed_interval(d), smallest_p(d.size)
    else:
        x, y = (side.groupby("seed")[metric].mean().to_numpy(float) for side in (a, b))
        test, p, ci = "mannwhitneyu", _mannwhitney_p(x, y), bootstrap_diff_ci(x, y)
        min_p = _mannwhitney_p(np.arange(1.0, x.size + 1), -np.arange(1.0, y.size + 1))
    mean_a = float(x.mean()) if x.size else np.nan
    mean_b = float(y.mean()) if y.size else np.nan
    return {
        "test": test,
        "paired": test == "sign-flip",
        "n_a": len(a),
        "n_b": len(b),
        "n_seeds_a": int(a["seed"].nunique()),
        "n_seeds_b": int(b["seed"].nunique()),
        "n_seeds": len(diffs) if test == "sign-flip" else 0,
        "mean_a": mean_a,
        "mean_b": mean_b,
        "mean_diff": mean_a - mean_b,
        "diff_ci_low": ci[0],
        "diff_ci_high": ci[1],
        "cliffs_delta": cliffs_delta(x, y),
        "p": p,
        "min_p": min_p,
    }


def pairwise_comparisons(
    runs: pd.DataFrame,
    axis: str,
    metric: str,
    within: list[str] | None = None,
    pair_on: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``compare`` every pair of levels of ``axis`` (in sorted order), within each ``within`` cell.

    Pairing uses ``pair_on``, by default every config column except ``axis`` plus the seed.
    ``p_holm`` applies Holm's step-down correction (Holm 1979) to all rows of the table.
    """
    within = within or []
    keys = [c for c in (PAIR_COLUMNS if pair_on is None else pair_on) if c != axis]
    cells = runs.groupby(within, dropna=False, sort=True) if within else [((), runs)]
    rows = []
    for cell_key, cell in cells:
        strata = dict(zip(within, cell_key, strict=True))
        levels = sorted(cell[axis].dropna().unique())
        for level_a, level_b in combinations(levels, 2):
            result = compare(cell[cell[axis] == level_a], cell[cell[axis] == level_b], metric, keys)
            labels = {"axis": axis, "level_a": level_a, "level_b": level_b, "metric": metric}
            rows.append({**strata, **labels, **result})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p_holm"] = holm(table["p"].to_numpy(float))
    return table


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (statsmodels ``multipletests``); NaNs stay NaN."""
    adjusted = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method="holm")[1]
    return adjusted


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


def _describe(values: pd.Series, metric: str) -> dict[str, float]:
    low, high = bootstrap_ci(values)
    return {
        f"{metric}_mean": float(values.mean()),
        f"{metric}_ci_low": low,
        f"{metric}_ci_high": high,
        f"{metric}_max": float(values.max()),
    }


def _seed_differences(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, pair_on: list[str]
) -> pd.DataFrame:
    """Per seed: the mean over matched ``pair_on`` keys of ``a`` and of ``b`` (columns "a",
    "b"); runs sharing a key are averaged first, keys without both sides dropped."""
    mean_a = a.groupby(pair_on, dropna=False)[metric].mean()
    mean_b = b.groupby(pair_on, dropna=False)[metric].mean()
    matched = pd.DataFrame({"a": mean_a, "b": mean_b}).dropna()
    return matched.groupby(level="seed").mean() if len(matched) else matched


def _mannwhitney_p(x: np.ndarray, y: np.ndarray) -> float:
    if x.size == 0 or y.size == 0:
        return np.nan
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0
    small = min(x.size, y.size) >= 2 and x.size + y.size <= MAX_PERMUTATION_N
    method = stats.PermutationMethod(n_resamples=9999, rng=0) if small else "asymptotic"
    return float(stats.mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue)


def _spearman(x: pd.Series, y: pd.Series) -> float:
    finite = x.notna() & y.notna()
    if finite.sum() < 2:
        return np.nan
    if np.ptp(y[finite]) == 0:
        return 0.0
    return float(stats.spearmanr(x[finite], y[finite]).statistic)
