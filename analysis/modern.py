"""The length-aware variants beside the classic ones: in-distribution exact match and
out-of-distribution exact match over L < length ≤ 2L (the claims' primary) per task,
normaliser (score function) and encoding, like for like.

A variant is length-aware when its class says so (``Score.modern``,
``PositionalEncoding.modern``, as its runs logged it: ``analysis.variants.fact``); a name no
registry holds is not. The table keeps the
settings (every config column but the task, the score, the encoding and randomization)
in which the study ran at least one length-aware variant, so each of them stands beside
the classic variants trained the same way. Pure functions of the tidy ``runs`` frame.
"""

from __future__ import annotations

import pandas as pd

from attnstudy.analysis.aggregate import CONFIGURATION_COLUMNS, ok_runs
from attnstudy.analysis.effects import NEAR_OOD
from attnstudy.analysis.seeds import seed_summary
from attnstudy.analysis.tables import Table, competent_extrapolation, fmt, summary_cell
from attnstudy.analysis.variants import (
    POSITION_NAMES,
    SCORE_NAMES,
    TASK_NAMES,
    flag,
    ordered,
    transformers,
    variant_labels,
    variant_order,
)
from attnstudy.schema import ENCODING_MODERN, ID_SEQ_ACC, SCORE_MODERN

VARIANT_COLUMNS = ("task", "score", "position", "randomized")
SETTING = [c for c in CONFIGURATION_COLUMNS if c not in VARIANT_COLUMNS]  # held equal
METRICS = {ID_SEQ_ACC: "ID exact match", NEAR_OOD: "OOD exact match (L, 2L] (competent)"}
SEEDS = "seeds: all (competent)"
LENGTH_AWARE = {SCORE_MODERN: "normaliser", ENCODING_MODERN: "encoding"}  # fact: its part


def modern_names(runs: pd.DataFrame) -> dict[str, list[str]]:
    """The length-aware normalisers and encodings the runs hold, in registry order."""
    scores = runs.loc[flag(runs, SCORE_MODERN), "score"]
    positions = runs.loc[flag(runs, ENCODING_MODERN), "position"]
    return {
        "normalisers": ordered(scores, SCORE_NAMES),
        "encodings": ordered(positions, POSITION_NAMES),
    }


def like_for_like(runs: pd.DataFrame) -> pd.DataFrame:
    """The Transformer runs in the settings where some run has a length-aware variant."""
    data = transformers(runs)
    modern = flag(data, SCORE_MODERN) | flag(data, ENCODING_MODERN)
    chosen = data.loc[modern, SETTING].drop_duplicates()
    return data.merge(chosen, on=SETTING, how="inner")


def row_keys(data: pd.DataFrame) -> list[str]:
    """Task, every setting that still varies (e.g. the architecture), normaliser, encoding."""
    return ["task", *(c for c in SETTING if data[c].nunique() > 1), "score", "encoding"]


def modern_table(runs: pd.DataFrame) -> Table | None:
    """ID exact match and OOD exact match over L < length ≤ 2L, mean [95% CI over seeds], per
    task × normaliser × encoding (each seed's runs averaged over any setting not shown),
    beside a column saying which part is length-aware; OOD only over competent runs
    (`competent_extrapolation`). None when the study ran no length-aware variant."""
    data = like_for_like(ok_runs(runs))  # a variant that only diverged has nothing to show
    if data.empty:
        return None
    facts = {name: flag(data, name) for name in LENGTH_AWARE}
    data = competent_extrapolation(data).assign(encoding=variant_labels(data), **facts)
    by = row_keys(data)
    summary = seed_summary(ok_runs(data), [*by, *LENGTH_AWARE], list(METRICS))
    rows = [_row(r, by) for _, r in _in_order(summary, by).iterrows()]
    columns = [*(_title(c) for c in by), "length-aware", *METRICS.values(), SEEDS]
    return Table("modern", "Length-aware variants beside the classic ones", columns, rows)


def _in_order(summary: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows in registry order of task, normaliser and encoding; other settings as text."""
    known = {"task": TASK_NAMES, "score": SCORE_NAMES}
    orders = {
        c: variant_order(summary[c]) if c == "encoding" else ordered(summary[c], known.get(c, ()))
        for c in by
    }

    def rank(i: int) -> tuple:
        return tuple(orders[c].index(summary[c].iloc[i]) for c in by)

    return summary.iloc[sorted(range(len(summary)), key=rank)]


def _title(column: str) -> str:
    return {"score": "normaliser (score)"}.get(column, column)


def _row(r: pd.Series, by: list[str]) -> dict:
    parts = [part for name, part in LENGTH_AWARE.items() if r[name]]
    row = {_title(c): fmt(r[c]) for c in by}
    row["length-aware"] = " + ".join(parts) or "–"
    for metric, name in METRICS.items():
        row[name] = summary_cell(r, metric)
    row[SEEDS] = f"{int(r['id_seq_acc_n'])} ({int(r[f'{NEAR_OOD}_n'])})"
    return row
