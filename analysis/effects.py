"""Seed-level effects: the statistics behind every claim's verdict.

The seed is the unit of replication and of every test. Seed s draws the same training
batches and test examples in every configuration, so the runs of one seed are not
independent across configurations: each seed is first reduced to one number, its mean
difference A − B over the configurations (units of one configuration and seed) it ran.
Over those per-seed differences d_1..d_n:

- the effect E is their mean;
- its two-sided p comes from the exact sign-flip permutation test (all 2^n sign patterns,
  valid for any distribution symmetric under the null, bimodal ones included); the
  smallest p it can give is 2 / 2^n (n = 3: 0.25);
- its 95% interval is a percentile bootstrap over seed ids: a resample draws whole seeds,
  so every configuration of a drawn seed comes along (drawn jointly);
- equivalence with zero, given a smallest effect of interest Δ, is two one-sided sign-flip
  tests (TOST) of E > −Δ and E < Δ, each at ALPHA.

A contrast needs ``MIN_SEEDS`` seeds with units on both sides; without them there is no
test ("inconclusive"). Out-of-distribution contrasts compare only competent runs
(``competent``) on both sides of every unit.

The pairwise tables of the report use the same effect (analysis.pairwise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import norm

from attnstudy.analysis.aggregate import (
    accuracy_between,
    bootstrap_ci,
    cliffs_delta,
)
from attnstudy.schema import ID_SEQ_ACC_AT_MAX, NEAR_OOD_SEQ_ACC

MIN_SEEDS = 3
COMPETENT_ID_ACC = 0.95
COMPETENCE_METRIC = ID_SEQ_ACC_AT_MAX  # exact match at the longest training length
NEAR_OOD = NEAR_OOD_SEQ_ACC  # exact match over L < length ≤ 2L: the OOD claims' primary
ALPHA = 0.05
POWER = 0.8  # the power "seeds needed" plans for
EXACT_MAX_SEEDS = 16  # all 2^n sign patterns up to here; seeded random patterns beyond
N_RANDOM_FLIPS = 20_000
FLOAT_TOL = 1e-9  # rounding error in a zero difference is no evidence

Combine = Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]]


@dataclass(frozen=True)
class Effect:
    """A contrast's seed-level effect A − B: its estimate, 95% interval over seeds, exact
    two-sided p and the smallest p n seeds allow, with the per-seed differences it came from
    and what was kept and left out; ``reason`` says why there is no test ("" when there is)."""

    estimate: float
    ci_low: float
    ci_high: float
    p: float
    min_p: float
    mean_a: float
    mean_b: float
    n_seeds: int  # seeds with units on both sides (the most any side had when untested)
    n_configs: int
    n_runs: int  # runs the contrast selected
    n_kept: int
    n_not_ok: int  # diverged, failed or without the metric
    n_incompetent: int  # not competent (`competent`) on an out-of-distribution contrast
    seed_diffs: tuple[float, ...] = ()  # one mean A − B per seed, in seed order
    reason: str = ""
    cliffs_delta: float = math.nan  # P(A > B) − P(A < B) over the seeds' means of A and B

    @property
    def tested(self) -> bool:
        return not self.reason

    @property
    def n_excluded(self) -> int:
        return self.n_runs - self.n_kept

    @property
    def n_unmatched(self) -> int:
        """Usable runs left out: no partner on the other side of their unit."""
        return self.n_excluded - self.n_not_ok - self.n_incompetent

    def exclusions(self) -> str:
        """One line: runs kept and why the others were left out."""
        parts = [
            (self.n_not_ok, "not finished ok or without the metric"),
            (self.n_incompetent, f"not competent ({COMPETENCE_TEXT})"),
            (self.n_unmatched, "without a partner of the same configuration and seed"),
        ]
        why = "; ".join(f"{n} {text}" for n, text in parts if n)
        return f"{self.n_kept} of {self.n_runs} runs kept" + (f" (excluded: {why})" if why else "")

    def text(self, label: str) -> str:
        """``label``: A vs B, effect [95% CI], p (and the smallest p n seeds allow)."""
        if not self.tested:
            return f"{label}: inconclusive (n = {self.n_seeds}): {self.reason}"
        return (
            f"{label}: {self.mean_a:.3f} vs {self.mean_b:.3f}, effect {self.estimate:+.3f} "
            f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}], p={self.p:.3g} (min {self.min_p:.3g}), "
            f"{self.n_seeds} seeds, {self.n_configs} configuration(s)"
        )


COMPETENCE_TEXT = f"exact match at the longest training length ≥ {COMPETENT_ID_ACC}"


def competent(runs: pd.DataFrame) -> pd.Series:
    """Whether each run learned its training lengths: exact match at the longest training
    length ≥ COMPETENT_ID_ACC (the mean over 1..L would let trivial short lengths carry a
    run that fails at L)."""
    at_max = runs.get(COMPETENCE_METRIC, pd.Series(np.nan, index=runs.index))
    return at_max.astype(float).fillna(-1.0) >= COMPETENT_ID_ACC


def logged_or_derived(runs: pd.DataFrame, metric: str, per_run: pd.Series) -> pd.Series:
    """``metric`` as each run logged it, else ``per_run`` (by run_id, derived from the
    per-length frame): stores written before the metric was logged still read it."""
    derived = runs["run_id"].map(per_run).astype(float)
    return runs.get(metric, derived).astype(float).fillna(derived)


def competence_accuracy(runs: pd.DataFrame, lengths: pd.DataFrame) -> pd.Series:
    """Each run's exact match at its longest training length."""
    at_max = lengths[lengths["length"] == lengths["train_max_len"]]
    return logged_or_derived(runs, COMPETENCE_METRIC, at_max.groupby("run_id")["seq_acc"].mean())


def near_ood_accuracy(runs: pd.DataFrame, lengths: pd.DataFrame) -> pd.Series:
    """Each run's exact match over L < length ≤ 2L (L its longest training length)."""
    return logged_or_derived(runs, NEAR_OOD, accuracy_between(lengths, 1, 2))


def usable(runs: pd.DataFrame, metric: str, need_competent: bool) -> tuple[pd.DataFrame, int, int]:
    """Runs finished ok with a finite ``metric`` and, when ``need_competent``, competent;
    with the numbers left out for each reason."""
    ok = runs[(runs["status"] == "ok") & runs[metric].notna()]
    if not need_competent:
        return ok, len(runs) - len(ok), 0
    learned = ok[competent(ok)]
    return learned, len(runs) - len(ok), len(ok) - len(learned)


def contrast(
    runs: pd.DataFrame,
    side: pd.Series,
    metric: str,
    pair_on: Sequence[str],
    need_competent: bool = False,
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
    kept, not_ok, incompetent = usable(chosen, metric, need_competent)
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
    used = obs.set_index(keys).index.isin(units.index)
    counts = {
        "n_runs": len(obs) + not_ok + incompetent if n_runs is None else n_runs,
        "n_kept": int(obs.loc[used, "run_id"].nunique()),
        "n_not_ok": not_ok,
        "n_incompetent": incompetent,
    }
    per_seed = units.groupby(level="seed").mean()  # (n seeds, [a, b]): mean over configurations
    if len(per_seed) < MIN_SEEDS:
        return _untested(len(per_seed) or _most_seeds(obs), counts, len(obs))
    diffs = (per_seed["a"] - per_seed["b"]).to_numpy(float)
    low, high = bootstrap_ci(diffs)
    return Effect(
        estimate=float(diffs.mean()),
        ci_low=low,
        ci_high=high,
        p=sign_flip_p(diffs),
        min_p=smallest_p(len(diffs)),
        mean_a=float(per_seed["a"].mean()),
        mean_b=float(per_seed["b"].mean()),
        n_seeds=len(diffs),
        n_configs=_n_configs(units.index),
        seed_diffs=tuple(diffs.tolist()),
        cliffs_delta=cliffs_delta(per_seed["a"], per_seed["b"]),
        **counts,
    )


@lru_cache(maxsize=32)
def sign_patterns(n: int) -> np.ndarray:
    """(P, n) signs ±1: all 2^n patterns up to EXACT_MAX_SEEDS seeds, else N_RANDOM_FLIPS
    seeded random ones with the identity first."""
    if n <= EXACT_MAX_SEEDS:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return 1.0 - 2.0 * bits
    rng = np.random.default_rng(0)
    random = rng.choice([-1.0, 1.0], size=(N_RANDOM_FLIPS, n))
    return np.vstack([np.ones((1, n)), random])


def sign_flip_p(diffs: np.ndarray, alternative: str = "two-sided") -> float:
    """Exact sign-flip permutation p of "mean difference = 0" over per-seed ``diffs`` (n,):
    the share of sign patterns whose sum is at least as extreme as the observed one.
    ``alternative``: "two-sided", "greater" (H1: mean > 0) or "less"."""
    return float(sign_flip_p_many(np.asarray(diffs, float)[None, :], alternative)[0])


def sign_flip_p_many(diffs: np.ndarray, alternative: str = "two-sided") -> np.ndarray:
    """`sign_flip_p` of each row of ``diffs`` (S, n) at once: (S,), in chunks of rows that
    keep the (rows, patterns) table near 32 MB."""
    rows = max(1, 2**22 // len(sign_patterns(diffs.shape[1])))
    return np.concatenate(
        [_sign_flip_chunk(diffs[i : i + rows], alternative) for i in range(0, len(diffs), rows)]
    )


def _sign_flip_chunk(diffs: np.ndarray, alternative: str) -> np.ndarray:
    flipped = diffs @ sign_patterns(diffs.shape[1]).T  # (S, P) sums under each pattern
    observed = diffs.sum(axis=1, keepdims=True)
    tol = FLOAT_TOL * np.maximum(1.0, np.abs(diffs).sum(axis=1, keepdims=True))
    if alternative == "two-sided":
        extreme = np.abs(flipped) >= np.abs(observed) - tol
    elif alternative == "greater":
        extreme = flipped >= observed - tol
    elif alternative == "less":
        extreme = flipped <= observed + tol
    else:
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    return extreme.mean(axis=1)


def smallest_p(n_seeds: int) -> float:
    """The smallest two-sided p the sign-flip test can give with ``n_seeds``: 2 / 2^n."""
    return min(1.0, 2.0 / 2**n_seeds) if n_seeds <= EXACT_MAX_SEEDS else 1 / N_RANDOM_FLIPS


def equivalence_p(diffs: Sequence[float], margin: float) -> float:
    """TOST p of "|mean difference| ≥ margin" over per-seed ``diffs``: the larger of the
    one-sided sign-flip p's of mean > −margin and mean < +margin. Below ALPHA, the effect is
    shown to lie within ± margin (no meaningful difference); NaN without seeds."""
    d = np.asarray(diffs, float)
    if d.size == 0:
        return math.nan
    return max(sign_flip_p(d + margin, "greater"), sign_flip_p(d - margin, "less"))


def seeds_needed(diffs: Sequence[float], margin: float, family_size: int) -> int:
    """About how many seeds would tell an effect of ± ``margin`` from none: enough for the
    sign-flip test to reach ALPHA / family_size (Holm's first step), and for POWER at that
    level given the spread of the per-seed ``diffs`` (normal approximation)."""
    level = ALPHA / max(family_size, 1)
    floor = next(n for n in range(1, 64) if smallest_p(n) < level)
    d = np.asarray(diffs, float)
    if d.size < 2 or margin <= 0:
        return floor
    z = norm.ppf(1 - level / 2) + norm.ppf(POWER)
    return max(floor, math.ceil((z * float(d.std(ddof=1)) / margin) ** 2))


def _n_configs(units: pd.Index) -> int:
    """How many configurations (unit keys without the seed) the units span."""
    return units.droplevel("seed").nunique() if units.nlevels > 1 else 1


def _a_minus_b(wide: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    missing = pd.Series(np.nan, index=wide.index)
    return wide.get("a", missing), wide.get("b", missing)


def _most_seeds(obs: pd.DataFrame) -> int:
    """The most seeds either side had (what an untested contrast reports as n)."""
    return int(obs.groupby("side")["seed"].nunique().max()) if len(obs) else 0


def _untested(seeds: int, counts: dict, n_obs: int) -> Effect:
    if counts["n_runs"] == 0:
        reason = "no runs"
    elif n_obs == 0 and counts["n_incompetent"]:
        reason = f"no competent run ({COMPETENCE_TEXT})"
    elif n_obs == 0:
        reason = "no run finished ok with the metric"
    else:
        reason = f"{seeds} seed(s) with runs of one configuration on both sides (needs {MIN_SEEDS})"
    nan = float("nan")
    return Effect(nan, nan, nan, nan, nan, nan, nan, seeds, 0, **counts, reason=reason)


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
