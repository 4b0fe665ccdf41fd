"""The report's pairwise tables: every pair of levels of an axis compared with the claims'
seed-level effect (analysis.effects.unit_effect); where fewer than ``MIN_SEEDS`` seeds
match, each side's per-seed means are compared with Mann-Whitney U instead. How every
comparison is made, as the report states it, is ``METHODS_TEXT``."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from attnstudy.analysis.aggregate import (
    PAIR_COLUMNS,
    bootstrap_diff_ci,
    cliffs_delta,
    holm,
    mannwhitney_p,
    ok_runs,
)
from attnstudy.analysis.effects import MIN_SEEDS, Effect, unit_effect
from attnstudy.analysis.seeds import seed_means

METHODS_TEXT = f"""\
Confidence intervals of a mean are 95% percentile bootstrap intervals over seeds: each seed's \
runs are first averaged over the settings not shown, then seeds are resampled (2,000 resamples, \
fixed seed); n counts seeds, and with one seed no interval is drawn. Runs that diverged or failed \
are counted but excluded from means. The seed \
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


def compare(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, pair_on: Sequence[str] = ("seed",)
) -> dict[str, object]:
    """Two-sided test of a difference in ``metric`` between run sets ``a`` and ``b`` (A − B),
    seeds as units (see ``METHODS_TEXT``).

    Runs are matched on ``pair_on`` (which must name "seed"); with at least ``MIN_SEEDS``
    seeds matched, this is the claims' seed-level effect (`unit_effect`); otherwise
    Mann-Whitney U compares the per-seed means of each side. Returns test name, seeds and
    runs, means (over seeds), the mean difference with its CI, Cliff's delta, the raw p-value
    and ``min_p``, the smallest p the same test gives at these numbers of seeds (to the most
    extreme data possible).
    """
    a, b = ok_runs(a, metric), ok_runs(b, metric)
    obs = pd.concat([a.assign(side="a"), b.assign(side="b")])
    effect = unit_effect(obs.assign(value=obs[metric].astype(float)), pair_on)
    counts = {
        "n_a": len(a),
        "n_b": len(b),
        "n_seeds_a": int(a["seed"].nunique()),
        "n_seeds_b": int(b["seed"].nunique()),
    }
    tested = _paired(effect) if effect.tested else _unpaired(a, b, metric)
    return {**tested, "paired": effect.tested, **counts}


def _paired(effect: Effect) -> dict[str, object]:
    return {
        "test": "sign-flip",
        "n_seeds": effect.n_seeds,
        "mean_a": effect.mean_a,
        "mean_b": effect.mean_b,
        "mean_diff": effect.mean_a - effect.mean_b,
        "diff_ci_low": effect.ci_low,
        "diff_ci_high": effect.ci_high,
        "cliffs_delta": effect.cliffs_delta,
        "p": effect.p,
        "min_p": effect.min_p,
    }


def _unpaired(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict[str, object]:
    """Mann-Whitney U over each side's per-seed means, with a two-sample bootstrap interval."""
    x, y = (seed_means(side, [], [metric])[metric].to_numpy(float) for side in (a, b))
    mean_a = float(x.mean()) if x.size else np.nan
    mean_b = float(y.mean()) if y.size else np.nan
    low, high = bootstrap_diff_ci(x, y)
    return {
        "test": "mannwhitneyu",
        "n_seeds": 0,
        "mean_a": mean_a,
        "mean_b": mean_b,
        "mean_diff": mean_a - mean_b,
        "diff_ci_low": low,
        "diff_ci_high": high,
        "cliffs_delta": cliffs_delta(x, y),
        "p": mannwhitney_p(x, y),
        "min_p": mannwhitney_p(np.arange(1.0, x.size + 1), -np.arange(1.0, y.size + 1)),
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
