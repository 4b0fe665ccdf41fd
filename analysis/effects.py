"""Seed-level effects: the statistics behind every claim's verdict.

The unit of replication is the seed. Observations are grouped into *units* (one
configuration and one seed); each unit holds the values of side A and side B of a
contrast, and its effect is A − B. Units sharing a configuration form a *stratum*. The
effect of a contrast is the mean over strata of the mean over the stratum's seeds, and its
95% interval comes from the stratified bootstrap (rliable, Agarwal et al. 2021): seeds are
resampled within each configuration and the configurations are averaged. A stratum needs
``MIN_SEEDS`` seeds to count; without one, there is no test ("inconclusive").

Out-of-distribution contrasts compare only competent runs (in-distribution exact match at
least ``COMPETENT_ID_ACC``) on both sides of every unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_SEEDS = 3
COMPETENT_ID_ACC = 0.95
N_BOOT = 2000
ALPHA = 0.05
FLOAT_TOL = 1e-9  # rounding error in a zero difference is no evidence

Combine = Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]]


@dataclass(frozen=True)
class Effect:
    """A contrast's seed-level effect A − B, its 95% CI and two-sided bootstrap p, with
    what was kept and left out; ``reason`` says why there is no test ("" when there is)."""

    estimate: float
    ci_low: float
    ci_high: float
    p: float
    mean_a: float
    mean_b: float
    n_seeds: int  # seeds of the thinnest kept configuration (of the thickest when untested)
    n_configs: int
    n_runs: int  # runs the contrast selected
    n_kept: int
    n_not_ok: int  # diverged, failed or without the metric
    n_incompetent: int  # below COMPETENT_ID_ACC in-distribution exact match
    reason: str = ""

    @property
    def tested(self) -> bool:
        return not self.reason

    @property
    def n_excluded(self) -> int:
        return self.n_runs - self.n_kept

    @property
    def n_unmatched(self) -> int:
        """Usable runs left out: no partner on the other side, or too few seeds."""
        return self.n_excluded - self.n_not_ok - self.n_incompetent

    def exclusions(self) -> str:
        """One line: runs kept and why the others were left out."""
        parts = [
            (self.n_not_ok, "not finished ok or without the metric"),
            (self.n_incompetent, f"below {COMPETENT_ID_ACC} in-distribution exact match"),
            (self.n_unmatched, f"without a partner or in a configuration with < {MIN_SEEDS} seeds"),
        ]
        why = "; ".join(f"{n} {text}" for n, text in parts if n)
        return f"{self.n_kept} of {self.n_runs} runs kept" + (f" (excluded: {why})" if why else "")

    def text(self, label: str) -> str:
        """``label``: A vs B, effect [95% CI], p, seeds and configurations."""
        if not self.tested:
            return f"{label}: inconclusive (n = {self.n_seeds}): {self.reason}"
        return (
            f"{label}: {self.mean_a:.3f} vs {self.mean_b:.3f}, effect {self.estimate:+.3f} "
            f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}], p={self.p:.3g}, "
            f"≥ {self.n_seeds} seeds in each of {self.n_configs} configuration(s)"
        )


def usable(runs: pd.DataFrame, metric: str, competent: bool) -> tuple[pd.DataFrame, int, int]:
    """Runs finished ok with a finite ``metric`` and, when ``competent``, in-distribution
    exact match ≥ COMPETENT_ID_ACC; with the numbers left out for each reason."""
    ok = runs[(runs["status"] == "ok") & runs[metric].notna()]
    if not competent:
        return ok, len(runs) - len(ok), 0
    learned = ok[ok["id_seq_acc"] >= COMPETENT_ID_ACC]
    return learned, len(runs) - len(ok), len(ok) - len(learned)


def contrast(
    runs: pd.DataFrame,
    side: pd.Series,
    metric: str,
    pair_on: Sequence[str],
    competent: bool = False,
    combine: Combine | None = None,
) -> Effect:
    """Seed-level effect of ``metric`` between the runs labelled by ``side`` (a Series
    aligned with ``runs``: the side or level of each run, NaN for runs left out), paired
    on ``pair_on`` (configuration columns and "seed").

    Runs of one unit and label are averaged; ``combine`` maps the units × labels table to
    the (A, B) values of each unit (default: labels "a" and "b"); a unit missing either is
    dropped."""
    side = side.reindex(runs.index)
    chosen = runs.assign(side=side)[side.notna()]
    kept, not_ok, incompetent = usable(chosen, metric, competent)
    obs = kept.assign(value=kept[metric].astype(float))
    return unit_effect(obs, pair_on, combine, len(chosen), not_ok, incompetent)


def unit_effect(
    obs: pd.DataFrame,
    pair_on: Sequence[str],
    combine: Combine | None = None,
    n_runs: int | None = None,
    not_ok: int = 0,
    incompetent: int = 0,
) -> Effect:
    """Seed-level effect of observations (columns ``pair_on``, "side", "value", "run_id")."""
    keys = list(pair_on)
    obs = obs.assign(**{k: obs[k].astype(object).where(obs[k].notna(), "<NA>") for k in keys})
    wide = obs.groupby([*keys, "side"])["value"].mean().unstack("side")
    a, b = (combine or _a_minus_b)(wide)
    units = pd.DataFrame({"a": a, "b": b}, index=wide.index).dropna()
    strata = [k for k in keys if k != "seed"]
    sizes = _stratum_sizes(units, strata)
    units = units[sizes >= MIN_SEEDS]
    used = obs.set_index(keys).index.isin(units.index)
    counts = {
        "n_runs": len(obs) + not_ok + incompetent if n_runs is None else n_runs,
        "n_kept": int(obs.loc[used, "run_id"].nunique()),
        "n_not_ok": not_ok,
        "n_incompetent": incompetent,
    }
    if units.empty:
        return _untested(int(sizes.max()) if len(sizes) else 0, counts, len(obs))
    groups = [g for _, g in units.groupby(strata)] if strata else [units]
    estimate, boot = stratified_bootstrap([(g["a"] - g["b"]).to_numpy(float) for g in groups])
    low, high = np.quantile(boot, [ALPHA / 2, 1 - ALPHA / 2])
    return Effect(
        estimate=estimate,
        ci_low=float(low),
        ci_high=float(high),
        p=bootstrap_p(boot),
        mean_a=float(np.mean([g["a"].mean() for g in groups])),
        mean_b=float(np.mean([g["b"].mean() for g in groups])),
        n_seeds=int(min(len(g) for g in groups)),
        n_configs=len(groups),
        **counts,
    )


def stratified_bootstrap(
    strata: Sequence[np.ndarray], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, np.ndarray]:
    """Mean over strata of each stratum's mean, and its bootstrap distribution (n_boot,):
    each resample draws every stratum's values with replacement, within the stratum."""
    rng = np.random.default_rng(seed)
    total = np.zeros(n_boot)
    for values in strata:
        total += values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    return float(np.mean([v.mean() for v in strata])), total / len(strata)


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "effect = 0": twice the smaller share of resamples on
    either side of 0 (add-one corrected, so never 0), capped at 1."""
    below = int((boot <= FLOAT_TOL).sum())
    above = int((boot >= -FLOAT_TOL).sum())
    return min(1.0, 2 * (1 + min(below, above)) / (1 + boot.size))


def _a_minus_b(wide: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    missing = pd.Series(np.nan, index=wide.index)
    return wide.get("a", missing), wide.get("b", missing)


def _stratum_sizes(units: pd.DataFrame, strata: list[str]) -> pd.Series:
    """For each unit, how many units (seeds) its configuration has."""
    if not strata:
        return pd.Series(len(units), index=units.index, dtype=int)
    frame = units.index.to_frame(index=False)
    sizes = frame.groupby(strata)["seed"].transform("size") if len(frame) else []
    return pd.Series(np.asarray(sizes, dtype=int), index=units.index)


def _untested(seeds: int, counts: dict, n_obs: int) -> Effect:
    if counts["n_runs"] == 0:
        reason = "no runs"
    elif n_obs == 0 and counts["n_incompetent"]:
        reason = f"no run reached {COMPETENT_ID_ACC} in-distribution exact match"
    elif n_obs == 0:
        reason = "no run finished ok with the metric"
    elif seeds == 0:
        reason = "no configuration and seed has runs on both sides"
    else:
        reason = f"at most {seeds} seed(s) of a configuration on both sides (needs {MIN_SEEDS})"
    nan = float("nan")
    return Effect(nan, nan, nan, nan, nan, nan, seeds, 0, **counts, reason=reason)


def within_runs(runs: pd.DataFrame, metric_a: str, metric_b: str, pair_on: Sequence[str]) -> Effect:
    """Seed-level effect of ``metric_a − metric_b``, two measurements of the same runs."""
    kept = runs[(runs["status"] == "ok") & runs[metric_a].notna() & runs[metric_b].notna()]
    not_ok = len(runs) - len(kept)
    obs = pd.concat(
        [
            kept.assign(side=s, value=kept[m].astype(float))
            for s, m in (("a", metric_a), ("b", metric_b))
        ]
    )
    return unit_effect(obs, pair_on, n_runs=len(runs), not_ok=not_ok)
