"""Seed-level summaries: the seed is the unit of replication.

A seed's runs are first averaged over every axis not grouped by (score functions, head
counts, ...), then the mean over seeds gets a 95% percentile-bootstrap interval that
resamples seeds (``analysis.aggregate.bootstrap_ci``); n is the number of seeds. With one
seed there is no interval: its bounds are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from attnstudy.analysis.aggregate import bootstrap_ci, ok_runs

SEED_CI_TEXT = (
    "Intervals are 95% percentile-bootstrap intervals over seeds: each seed's runs are first "
    "averaged over the settings not shown, then seeds are resampled (2,000 resamples, fixed "
    "seed); n counts seeds. With one seed no interval is drawn or printed."
)
STATISTICS = ("mean", "low", "high", "n", "max")  # the columns `describe` gives each metric


def seed_means(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per group of ``by`` and seed: the mean of each metric over the seed's runs."""
    grouped = frame.groupby([*by, "seed"], dropna=False, sort=True)
    return grouped[list(metrics)].mean().reset_index()


def seed_summary(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by``: `describe` of each metric's per-seed means (``<m>_mean``,
    ``<m>_low``, ``<m>_high``, ``<m>_n``, ``<m>_max``)."""
    per_seed = seed_means(frame, by, metrics)
    rows = [
        _keys(by, key) | describe_all(group, metrics)
        for key, group in per_seed.groupby(list(by), dropna=False, sort=True)
    ]
    columns = [*by, *(f"{m}_{s}" for m in metrics for s in STATISTICS)]
    return pd.DataFrame(rows, columns=columns)


def summary_table(runs: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by`` (every group, also one without a finished run): ``n_seeds`` with
    a run finished ok, ``n_diverged`` and ``n_failed`` runs, then `describe` of each metric
    over the per-seed means of the runs finished ok."""
    rows = []
    for key, group in runs.groupby(list(by), dropna=False, sort=True):
        ok = ok_runs(group)
        counts = {f"n_{s}": int((group["status"] == s).sum()) for s in ("diverged", "failed")}
        row = _keys(by, key) | {"n_seeds": ok["seed"].nunique()} | counts
        rows.append(row | describe_all(seed_means(ok, [], metrics), metrics))
    return pd.DataFrame(rows)


def describe_all(per_seed: pd.DataFrame, metrics: Sequence[str]) -> dict[str, float]:
    """`describe` of each of ``metrics`` (columns of ``per_seed``, one row per seed)."""
    return {k: v for m in metrics for k, v in describe(per_seed[m], m).items()}


def describe(values: pd.Series, metric: str) -> dict[str, float]:
    """Mean, interval (NaN below two values), count and maximum of the finite ``values``."""
    finite = values.dropna()
    low, high = bootstrap_ci(finite) if len(finite) > 1 else (np.nan, np.nan)
    mean, most = (float(finite.mean()), float(finite.max())) if len(finite) else (np.nan, np.nan)
    return {
        f"{metric}_mean": mean,
        f"{metric}_low": low,
        f"{metric}_high": high,
        f"{metric}_n": len(finite),
        f"{metric}_max": most,
    }


def _keys(by: Sequence[str], key) -> dict:
    return dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
