"""The report's tables as plain rows (lists of dicts of display strings): pure functions of
the tidy frames, formatting included; no I/O and no HTML."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import pandas as pd

from attnstudy.analysis.aggregate import CONFIGURATION_COLUMNS, ok_runs
from attnstudy.analysis.effects import ALPHA, NEAR_OOD, competent
from attnstudy.analysis.pairwise import pairwise_comparisons
from attnstudy.analysis.seeds import seed_summary, summary_table
from attnstudy.analysis.variants import (
    ARCH_NAMES,
    SCORE_NAMES,
    flag,
    ordered,
    variant_labels,
    variant_order,
)
from attnstudy.schema import (
    EXTRAPOLATION_LEN,
    ID_SEQ_ACC,
    ID_TOKEN_ACC,
    N_PARAMS,
    NEAR_OOD_TOKEN_ACC,
    OOD_SEQ_ACC,
    OOD_TOKEN_ACC,
    PEAK_MEM_MB,
    STEP_TIME_MS,
    USES_ATTENTION,
    USES_POSITIONS,
)

SHOWN_CONFIG = ("task", "arch", "score", "position", "heads")
CONFIGURATION_METRICS = (  # the per-configuration summary's metrics
    ID_SEQ_ACC,
    NEAR_OOD,  # the claims' primary: exact match over L < length ≤ 2L
    OOD_SEQ_ACC,
    ID_TOKEN_ACC,
    OOD_TOKEN_ACC,
    EXTRAPOLATION_LEN,
)
METRIC_NAMES = {
    ID_SEQ_ACC: "ID exact match",
    NEAR_OOD: "OOD exact match (L, 2L]",  # the claims' primary: L < length ≤ 2L
    OOD_SEQ_ACC: "OOD exact match (every length > L)",
    ID_TOKEN_ACC: "ID token acc.",
    OOD_TOKEN_ACC: "OOD token acc.",
    EXTRAPOLATION_LEN: "extrap. length",  # longest length passed at exact match 0.9
}
COST_METRICS = {
    N_PARAMS: "parameters",
    STEP_TIME_MS: "step time (ms)",
    PEAK_MEM_MB: "activation memory (MB)",
}
STAT_AXES = ("position", "score", "heads", "arch", "randomized")
STAT_METRICS = (NEAR_OOD, ID_SEQ_ACC)
AXES = {  # the study's axes, each summarised in one table, and what its levels are called
    "position": "positional encoding",
    "score": "score function",
    "heads": "heads",
    "arch": "architecture",
}
AXIS_METRICS = (ID_SEQ_ACC, NEAR_OOD, EXTRAPOLATION_LEN)
EXTRAPOLATION_METRICS = (  # compared over competent runs only
    NEAR_OOD,
    NEAR_OOD_TOKEN_ACC,
    OOD_SEQ_ACC,
    OOD_TOKEN_ACC,
    EXTRAPOLATION_LEN,
)
GRID_POINT = ("grid point",)
APPLIES_WHERE = {  # the fact (schema.VARIANT_FACTS) a run's architecture needs for an axis
    "position": USES_POSITIONS,
    "randomized": USES_POSITIONS,
    "heads": USES_ATTENTION,
    "score": USES_ATTENTION,
}


def applicable(runs: pd.DataFrame, axis: str) -> pd.DataFrame:
    """The runs whose architecture the axis means something for, as each run declares it
    (an RNN baseline takes no positional encoding, and no score or heads)."""
    needs = APPLIES_WHERE.get(axis)
    return runs if needs is None else runs[flag(runs, needs)]


def fmt(value, digits: int = 3) -> str:
    """A number for a table: '–' for missing, integers without decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fmt_ci(mean: float, low: float, high: float, digits: int = 3, n: int | None = None) -> str:
    """'mean [low, high]'; from one value (``n`` = 1) 'mean (n = 1)': there is no interval."""
    if isinstance(mean, float) and math.isnan(mean):
        return "–"
    if n == 1:
        return f"{fmt(mean, digits)} (n = 1)"
    return f"{fmt(mean, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def summary_cell(summary: pd.Series | dict, metric: str) -> str:
    """``metric``'s summary over seeds (the columns `seeds.describe` gives) in a row of
    ``summary`` (or in `describe`'s dict): 'mean [low, high]', or 'mean (n = 1)' from one seed."""
    cell = (summary[f"{metric}_{s}"] for s in ("mean", "low", "high"))
    return fmt_ci(*cell, digits_of(metric), summary[f"{metric}_n"])


@dataclass(frozen=True)
class Table:
    """One table of the report; also written as ``tables/<key>.csv`` beside it."""

    key: str  # the CSV's file stem and the table's anchor
    title: str
    columns: list[str]
    rows: list[dict]
    links: dict[str, str] = field(default_factory=dict)  # column -> URL prefix of its cells
    code: tuple[str, ...] = ()  # columns shown as code (grid keys)

    @property
    def csv(self) -> str:
        return f"tables/{self.key}.csv"


def digits_of(metric: str) -> int:
    return 1 if metric == EXTRAPOLATION_LEN else 3


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The config columns that identify a configuration in this study (seed excluded):
    the main axes, plus every other config column that varies."""
    return [
        c for c in CONFIGURATION_COLUMNS if c in SHOWN_CONFIG or runs[c].nunique(dropna=False) > 1
    ]


def configuration_table(runs: pd.DataFrame) -> Table:
    """Per configuration: seeds, diverged and failed counts, then mean [95% CI] and max over
    seeds of every summary metric."""
    by = config_columns(runs)
    table = summary_table(runs, by, CONFIGURATION_METRICS)
    rows = []
    for _, r in table.iterrows():
        row = {c: fmt(r[c]) for c in by}
        row |= {"seeds": r["n_seeds"], "diverged": r["n_diverged"], "failed": r["n_failed"]}
        for m in CONFIGURATION_METRICS:
            row[METRIC_NAMES[m]] = summary_cell(r, m)
            row[METRIC_NAMES[m] + " max"] = fmt(r[f"{m}_max"], digits_of(m))
        rows.append(row)
    title = "Summary per configuration"
    return Table("configurations", title, list(rows[0]) if rows else [], rows)


def competent_extrapolation(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the out-of-distribution metrics blanked (NaN) where the run did not
    learn its training lengths (`effects.competent`): extrapolation is compared only
    between runs that did."""
    keep = competent(runs)
    return runs.assign(**{m: runs[m].where(keep) for m in EXTRAPOLATION_METRICS if m in runs})


def axis_table(runs: pd.DataFrame, axis: str) -> Table:
    """One axis's levels, each aggregated over every other setting: ID exact match, OOD
    exact match over L < length ≤ 2L (the claims' primary) and extrapolation length (these
    two over competent runs only), mean [95% CI over seeds], the seeds with a competent run
    (n), the runs averaged and the runs left out (diverged or failed). Architectures the
    axis means nothing for are left out (the RNN baselines take no positional encoding)."""
    data = competent_extrapolation(applicable(runs, axis))
    data = data.assign(level=variant_labels(data) if axis == "position" else data[axis])
    summary = seed_summary(ok_runs(data), ["level"], AXIS_METRICS).set_index("level")
    summary = summary.reindex(_axis_order(axis, data["level"]))
    rows = []
    for level, r in summary.iterrows():
        status = data.loc[data["level"] == level, "status"]
        row = {AXES[axis]: fmt(level)}
        for m in AXIS_METRICS:
            row[METRIC_NAMES[m]] = summary_cell(r, m)
        row["n (seeds)"] = 0 if pd.isna(r[f"{NEAR_OOD}_n"]) else int(r[f"{NEAR_OOD}_n"])
        row["runs"] = int((status == "ok").sum())
        row["left out"] = int((status != "ok").sum())
        rows.append(row)
    columns = [AXES[axis], *(METRIC_NAMES[m] for m in AXIS_METRICS), "n (seeds)", "runs"]
    return Table(f"by_{axis}", f"By {AXES[axis]}", [*columns, "left out"], rows)


def _axis_order(axis: str, levels: pd.Series) -> list:
    if axis == "position":
        return variant_order(levels)
    known = {"score": SCORE_NAMES, "arch": ARCH_NAMES}.get(axis)
    return ordered(levels, known) if known else sorted(set(levels))


def cost_table(runs: pd.DataFrame) -> Table:
    """Mean parameters, step time and activation memory per variant over its finished runs."""
    ok = ok_runs(runs)
    by = [c for c in config_columns(runs) if c != "task"]
    rows = []
    for key, group in ok.groupby(by, dropna=False, sort=True):
        row = {c: fmt(v) for c, v in zip(by, key, strict=True)}
        row["runs"] = len(group)
        for metric, name in COST_METRICS.items():
            row[name] = fmt(float(group[metric].mean()), 0 if metric == N_PARAMS else 2)
        rows.append(row)
    return Table("cost", "Cost per variant", [*by, "runs", *COST_METRICS.values()], rows)


def statistics_tables(runs: pd.DataFrame) -> list[Table]:
    """For each axis with two or more levels and each of STAT_METRICS, the pairwise
    comparisons within each task (Holm-corrected over the table) as display rows; only
    finished runs of architectures the axis applies to take part, and for OOD metrics only
    competent runs (`competent_extrapolation`)."""
    tables = []
    for axis, metric in itertools.product(STAT_AXES, STAT_METRICS):
        data = ok_runs(competent_extrapolation(runs), metric)
        data = applicable(data, axis)
        if data[axis].nunique() < 2:
            continue
        table = pairwise_comparisons(data, axis, metric, within=["task"])
        if not table.empty:
            rows = _stat_rows(table)
            title = f"{AXES.get(axis, axis)} — {METRIC_NAMES[metric]}"
            tables.append(Table(f"pairwise_{axis}_{metric}", title, list(rows[0]), rows))
    return tables


def _stat_rows(table: pd.DataFrame) -> list[dict]:
    rows = []
    for _, r in table.iterrows():
        if r["paired"]:
            n = f"{r['n_seeds']} seeds ({r['n_a']} + {r['n_b']} runs)"
        else:
            n = f"{r['n_seeds_a']} + {r['n_seeds_b']} seeds ({r['n_a']} + {r['n_b']} runs)"
        smallest = r["n_seeds"] if r["paired"] else min(r["n_seeds_a"], r["n_seeds_b"])
        diff = r["mean_diff"], r["diff_ci_low"], r["diff_ci_high"]
        rows.append(
            {
                "task": r["task"],
                "A": fmt(r["level_a"]),
                "B": fmt(r["level_b"]),
                "mean A": fmt(r["mean_a"]),
                "mean B": fmt(r["mean_b"]),
                "A − B [95% CI]": fmt_ci(*diff, n=smallest),
                "Cliff's δ": fmt(r["cliffs_delta"], 2),
                "test": r["test"],
                "n": n,
                "p": fmt(r["p"], 4),
                "p (Holm)": fmt(r["p_holm"], 4),
                "min p": _fmt_min_p(r["min_p"]),
            }
        )
    return rows


def _fmt_min_p(min_p: float) -> str:
    """The smallest p a comparison's test can give; flagged where it cannot reach ALPHA."""
    return fmt(min_p, 4) + (" (cannot reject)" if min_p >= ALPHA else "")


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
        "unfinished": _key_table("unfinished", "Attempts without a finished trial", unfinished),
        "bad": _key_table("left_out", "Diverged or failed trials", bad, "reason"),
    }


def _key_table(key: str, title: str, frame: pd.DataFrame, *extra: str) -> Table:
    rows = [
        {"grid point": r["grid_key"], "status": r["status"]}
        | {c: r[c] for c in extra}
        | {"run id": r["run_id"]}
        for _, r in frame.iterrows()
    ]
    return Table(key, title, ["grid point", "status", *extra, "run id"], rows, code=GRID_POINT)


def attempts_table(attempts: pd.DataFrame, runs: pd.DataFrame) -> Table:
    """Every trial run recorded under the study and whether the report uses it."""
    used = set(runs["run_id"])
    rows = [
        {"grid point": r["grid_key"], "status": r["status"], "run id": r["run_id"]}
        | {"in the report": _yes(r["run_id"] in used)}
        for _, r in attempts.sort_values(["grid_key", "start_time"]).iterrows()
    ]
    columns = ["grid point", "status", "run id", "in the report"]
    return Table("runs", "Runs", columns, rows, code=GRID_POINT)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _missing_points(finished: pd.Series, seen: pd.Series, expected: int) -> list[str] | None:
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
    return sorted(set(grid) - set(finished))


def _parse_key(key: str) -> dict[str, str] | None:
    pairs = [part.split("=", 1) for part in str(key).split(",")]
    return dict(pairs) if all(len(p) == 2 for p in pairs) else None


def settings(runs: pd.DataFrame, names: list[str]) -> tuple[Table, Table]:
    """(fixed settings: name and value; varied settings: name and levels) of the params
    ``names`` over the runs."""
    fixed, varied = [], []
    for name in names:
        levels = sorted(runs[name].dropna().unique(), key=str)
        if len(levels) > 1:
            varied.append({"setting": name, "levels": ", ".join(fmt(v) for v in levels)})
        elif levels:
            fixed.append({"setting": name, "value": fmt(levels[0])})
    return (
        Table("settings_fixed", "Settings fixed", ["setting", "value"], fixed),
        Table(
            "settings_varied", "Settings varied (the grid's axes)", ["setting", "levels"], varied
        ),
    )
