"""The report's tables as plain rows (lists of dicts of display strings): pure functions of
the tidy frames, formatting included; no I/O and no HTML."""

from __future__ import annotations

import itertools
import math

import pandas as pd

from analysis.aggregate import SUMMARY_METRICS, ok_runs, pairwise_comparisons, summary_table
from analysis.load import CONFIG_COLUMNS

SHOWN_CONFIG = ("task", "arch", "score", "position", "heads")
METRIC_NAMES = {
    "id_seq_acc": "ID exact match",
    "ood_seq_acc": "OOD exact match",
    "id_token_acc": "ID token acc.",
    "ood_token_acc": "OOD token acc.",
    "extrapolation_len": "extrapolation length (tokens)",
}
COST_METRICS = {
    "n_params": "parameters",
    "step_time_ms": "step time (ms)",
    "peak_mem_mb": "activation memory (MB)",
}
STAT_AXES = ("position", "score", "heads", "arch", "randomized")
STAT_METRICS = ("ood_seq_acc", "id_seq_acc")
RNN_ARCHS = ("rnn", "rnn-attention")
NOT_APPLICABLE = {  # architectures an axis means nothing for
    "position": RNN_ARCHS,
    "randomized": RNN_ARCHS,
    "heads": ("rnn",),
    "score": ("rnn",),
}


def fmt(value, digits: int = 3) -> str:
    """A number for a table: '–' for missing, integers without decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fmt_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "–"
    return f"{fmt(mean, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The config columns that identify a configuration in this study (seed excluded):
    the main axes, plus every other config column that varies."""
    keep = [c for c in CONFIG_COLUMNS if c in SHOWN_CONFIG or runs[c].nunique(dropna=False) > 1]
    return [c for c in keep if c != "seed"]


def summary_rows(runs: pd.DataFrame) -> tuple[list[str], list[dict]]:
    """Per configuration: seeds, diverged and failed counts, then mean [95% CI] and max over
    seeds of every summary metric. Returns (column names, rows)."""
    by = config_columns(runs)
    table = summary_table(runs, by)
    rows = []
    for _, r in table.iterrows():
        row = {c: fmt(r[c]) for c in by}
        row |= {"seeds": r["n_seeds"], "diverged": r["n_diverged"], "failed": r["n_failed"]}
        for m in SUMMARY_METRICS:
            digits = 1 if m == "extrapolation_len" else 3
            row[METRIC_NAMES[m]] = fmt_ci(
                r[f"{m}_mean"], r[f"{m}_ci_low"], r[f"{m}_ci_high"], digits
            )
            row[METRIC_NAMES[m] + " max"] = fmt(r[f"{m}_max"], digits)
        rows.append(row)
    return list(rows[0]) if rows else [], rows


def cost_rows(runs: pd.DataFrame) -> tuple[list[str], list[dict]]:
    """Mean parameters, step time and activation memory per variant over its finished runs."""
    ok = ok_runs(runs)
    by = [c for c in config_columns(runs) if c != "task"]
    rows = []
    for key, group in ok.groupby(by, dropna=False, sort=True):
        row = {c: fmt(v) for c, v in zip(by, key, strict=True)}
        row["runs"] = len(group)
        for metric, name in COST_METRICS.items():
            row[name] = fmt(float(group[metric].mean()), 0 if metric == "n_params" else 2)
        rows.append(row)
    return list(rows[0]) if rows else [], rows


def statistics_tables(runs: pd.DataFrame) -> list[dict]:
    """For each axis with two or more levels and each of STAT_METRICS, the pairwise
    comparisons within each task (Holm-corrected over the table) as display rows; only
    finished runs of architectures the axis applies to take part."""
    tables = []
    for axis, metric in itertools.product(STAT_AXES, STAT_METRICS):
        data = ok_runs(runs, metric)
        data = data[~data["arch"].isin(NOT_APPLICABLE.get(axis, ()))]
        if data[axis].nunique() < 2:
            continue
        table = pairwise_comparisons(data, axis, metric, within=["task"])
        if not table.empty:
            tables.append({"axis": axis, "metric": metric, "rows": _stat_rows(table)})
    return tables


def _stat_rows(table: pd.DataFrame) -> list[dict]:
    rows = []
    for _, r in table.iterrows():
        n = f"{r['n_pairs']} pairs" if r["paired"] else f"{r['n_a']} + {r['n_b']} runs"
        rows.append(
            {
                "task": r["task"],
                "A": fmt(r["level_a"]),
                "B": fmt(r["level_b"]),
                "mean A": fmt(r["mean_a"]),
                "mean B": fmt(r["mean_b"]),
                "A − B [95% CI]": fmt_ci(r["mean_diff"], r["diff_ci_low"], r["diff_ci_high"]),
                "Cliff's δ": fmt(r["cliffs_delta"], 2),
                "test": r["test"],
                "n": n,
                "p": fmt(r["p"], 4),
                "p (Holm)": fmt(r["p_holm"], 4),
            }
        )
    return rows


def completeness(
    runs: pd.DataFrame, attempts: pd.DataFrame, grid_size: int | None, grid: list[str] | None
) -> dict:
    """What the study has not finished: grid points without a finished trial (listed when
    the study recorded its grid, or when the grid is the full product of the levels seen),
    diverged and failed trials with their reasons, and attempts still running or killed."""
    expected = len(grid) if grid else grid_size if grid_size is not None else len(runs)
    if grid:
        listed = sorted(set(grid) - set(runs["grid_key"]))
    else:
        listed = _missing_points(runs["grid_key"], attempts["grid_key"], expected)
    unfinished = attempts[
        attempts["status"].isin(("running", "killed"))
        & ~attempts["grid_key"].isin(runs["grid_key"])
    ]
    bad = runs[runs["status"].isin(("diverged", "failed"))]
    return {
        "grid_size": expected,
        "n_finished": len(runs),
        "counts": runs["status"].value_counts().to_dict(),
        "n_missing": max(expected - len(runs), 0),
        "missing": listed,
        "unfinished": _key_rows(unfinished, "status", "run_id"),
        "bad": _key_rows(bad, "status", "reason", "run_id"),
    }


def _key_rows(frame: pd.DataFrame, *columns: str) -> list[dict]:
    return [
        {"grid point": r["grid_key"], **{c: r[c] for c in columns}} for _, r in frame.iterrows()
    ]


def _missing_points(done: pd.Series, seen: pd.Series, expected: int) -> list[str] | None:
    """Grid keys ("axis=value,…") in the product of the levels seen but without a finished
    trial; None when that product is not the study's grid (its size differs)."""
    parsed = [_parse_key(k) for k in seen.unique()]
    if not parsed or any(p is None or p.keys() != parsed[0].keys() for p in parsed):
        return None
    axes = {a: sorted({p[a] for p in parsed}) for a in parsed[0]}
    grid = [
        ",".join(f"{a}={v}" for a, v in zip(axes, values, strict=True))
        for values in itertools.product(*axes.values())
    ]
    if len(grid) != expected:
        return None
    return sorted(set(grid) - set(done))


def _parse_key(key: str) -> dict[str, str] | None:
    pairs = [part.split("=", 1) for part in str(key).split(",")]
    return dict(pairs) if all(len(p) == 2 for p in pairs) else None


def settings(runs: pd.DataFrame, names: list[str]) -> tuple[list[dict], list[dict]]:
    """(fixed settings: name and value; varied settings: name and levels) of the params
    ``names`` over the runs."""
    fixed, varied = [], []
    for name in names:
        levels = sorted(runs[name].dropna().unique(), key=str)
        if len(levels) > 1:
            varied.append({"setting": name, "levels": ", ".join(fmt(v) for v in levels)})
        elif levels:
            fixed.append({"setting": name, "value": fmt(levels[0])})
    return fixed, varied
