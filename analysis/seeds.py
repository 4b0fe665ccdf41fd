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

from attnstudy.analysis.aggregate import bootstrap_ci

SEED_CI_TEXT = (
    "Intervals are 95% percentile-bootstrap intervals over seeds: each seed's runs are first "
    "averaged over the settings not shown, then seeds are resampled (2,000 resamples, fixed "
    "seed); n counts seeds. With one seed no interval is drawn or printed."
)


def seed_means(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per group of ``by`` and seed: the mean of each metric over the seed's runs."""
    grouped = frame.groupby([*by, "seed"], dropna=False, sort=True)
    return grouped[list(metrics)].mean().reset_index()


def seed_summary(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by``: for each metric ``<m>_mean``, ``<m>_low``, ``<m>_high`` (the
    bootstrap interval over seeds, NaN below two seeds) and ``<m>_n`` (seeds with a value)."""
    per_seed = seed_means(frame, by, metrics)
    rows = []
    for key, group in per_seed.groupby(list(by), dropna=False, sort=True):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        for metric in metrics:
            row |= describe(group[metric], metric)
        rows.append(row)
    columns = [*by, *(f"{m}_{s}" for m in metrics for s in ("mean", "low", "high", "n"))]
    return pd.DataFrame(rows, columns=columns)


def describe(values: pd.Series, metric: str) -> dict[str, float]:
    """Mean, interval (NaN below two values) and count of the finite ``values``."""
    finite = values.dropna()
    low, high = bootstrap_ci(finite) if len(finite) > 1 else (np.nan, np.nan)
    mean = float(finite.mean()) if len(finite) else np.nan
    return {
        f"{metric}_mean": mean,
        f"{metric}_low": low,
        f"{metric}_high": high,
        f"{metric}_n": len(finite),
    }
