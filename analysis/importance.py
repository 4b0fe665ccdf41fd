"""Which axis matters: Optuna's parameter importances of a study's axes for its primary
metrics, in distribution (``id_seq_acc``) and out of distribution (``near_ood_seq_acc``,
exact match over lengths L+1..2L).

The trials come as a frame, a row per finished trial and a column per axis and metric: the
report's MLflow runs, or the Optuna trials of the study file's grid (``study_frame``, for
``attnstudy study importance``). Each metric's trials are replayed into an in-memory Optuna
study with one categorical distribution per axis over the levels the frame holds, so they
share one search space whatever the stored study's history (trials queued before the axes
were params, a block without an axis: level ``n/a``).

The evaluator is fANOVA (Hutter, Hoos and Leyton-Brown 2014; Optuna's default) with a fixed
seed, so its random forest, and every importance, is the same on every run. Its trees are
cut at depth 8 (Optuna's default is 64): a tree then has at most 256 leaves whatever the
number of trials, and 8,000 trials of 8 axes take ~15 s where depth 64 takes minutes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, create_trial

from attnstudy.analysis.load import StudyError
from attnstudy.analysis.tables import Table, fmt
from attnstudy.redact import redact
from attnstudy.schema import ID_SEQ_ACC, NEAR_OOD_SEQ_ACC
from attnstudy.stores import Stores
from attnstudy.work_queue import axis_values, classify, read_trials

if TYPE_CHECKING:  # study_config reads the registries, which import torch
    from attnstudy.study_config import StudySpec

METRICS = (ID_SEQ_ACC, NEAR_OOD_SEQ_ACC)  # the claims' primary metrics, ID and OOD
MIN_TRIALS = 2
SEED = 0
MAX_DEPTH = 8
NOT_SET = "n/a"  # the level of an axis that a trial's block does not have
EVALUATOR = f"fANOVA (seed {SEED}, trees of depth ≤ {MAX_DEPTH})"


def study_frame(spec: StudySpec, stores: Stores) -> pd.DataFrame:
    """A row per grid point of the study file with a finished (complete) trial: its axis
    values and metrics. ``StudyError`` if none has one."""
    trials = read_trials(spec.name, stores)
    done = [s.trial for s in classify(spec.points(), trials).values() if s.state == "done"]
    if not done:
        raise StudyError(
            f"study {spec.name!r} has no finished trials in {redact(stores.storage_url)}; "
            f"run `attnstudy study run {spec.path}` first"
        )
    return trial_frame(done)


def trial_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    """A row per trial: its axis values, then the metrics it recorded."""
    rows = [axis_values(t) | {m: t.user_attrs.get(m) for m in METRICS} for t in trials]
    return pd.DataFrame(rows).astype({m: float for m in METRICS})


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a `trial_frame` that are axes."""
    return [c for c in frame.columns if c not in METRICS]


def varying_axes(frame: pd.DataFrame, axes: list[str]) -> list[str]:
    """The axes with more than one level over the frame's rows."""
    return [a for a in axes if frame[a].map(level).nunique() > 1]


def importance_table(frame: pd.DataFrame, axes: list[str]) -> Table:
    """Each varying axis's importance for each metric (normalised to sum to 1 per metric;
    '–' for a metric with fewer than MIN_TRIALS finite values or one value only), axes by
    importance for the first metric. ``StudyError`` if no metric can be evaluated."""
    varying = varying_axes(frame, axes)
    found = {m: metric_importances(frame, varying, m) for m in METRICS}
    if not varying or not any(found.values()):
        counts = ", ".join(f"{frame[m].notna().sum()} with {m}" for m in METRICS)
        raise StudyError(
            f"importances need at least {MIN_TRIALS} finished trials whose metric differs "
            f"and an axis that varies; found {len(frame)} finished trial(s) ({counts}) and "
            f"{len(varying)} varying axes"
        )
    first = found[METRICS[0]]
    order = sorted(varying, key=lambda a: -first.get(a, -1.0))
    rows = [{"axis": a} | {m: fmt(found[m].get(a)) for m in METRICS} for a in order]
    n = max(frame[m].notna().sum() for m in METRICS)
    title = f"Optuna importances by {EVALUATOR} over {n} finished trials"
    return Table("importance", title, ["axis", *METRICS], rows)


def metric_importances(frame: pd.DataFrame, axes: list[str], metric: str) -> dict[str, float]:
    """fANOVA importance of each axis for `metric` over the rows where it is finite; empty
    when fewer than MIN_TRIALS rows or a single value leave nothing to explain."""
    rows = frame[frame[metric].notna()]
    if len(rows) < MIN_TRIALS or rows[metric].nunique() < 2 or not axes:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line for the study in memory
    study = optuna.create_study(direction="maximize")
    study.add_trials(replayed_trials(rows, axes, metric))
    evaluator = FanovaImportanceEvaluator(seed=SEED, max_depth=MAX_DEPTH)
    found = get_param_importances(study, evaluator=evaluator, params=axes)
    return {axis: float(value) for axis, value in found.items()}


def replayed_trials(rows: pd.DataFrame, axes: list[str], metric: str) -> list[FrozenTrial]:
    """One complete trial per row, valued by `metric`, its axis levels as params over one
    shared categorical distribution per axis."""
    levels = rows[axes].map(level)
    shared = {a: CategoricalDistribution(sorted(levels[a].unique())) for a in axes}
    return [
        create_trial(params=dict(params), distributions=shared, value=value)
        for (_, params), value in zip(levels.iterrows(), rows[metric], strict=True)
    ]


def level(value) -> str:
    """An axis value as a category: its text, NOT_SET when missing."""
    return NOT_SET if value is None or pd.isna(value) else str(value)


def report_importance(runs: pd.DataFrame, settings: list[str]) -> Table | None:
    """The report's table over its finished runs, the varied settings as axes; None when
    importances cannot be computed."""
    try:
        return importance_table(runs[runs["status"] == "ok"], settings)
    except StudyError:
        return None


def as_text(table: Table) -> str:
    """The table as aligned text, its title first."""
    width = max(len(row["axis"]) for row in table.rows)
    head = f"{'axis':<{width}}" + "".join(f"  {m:>12}" for m in table.columns[1:])
    lines = [
        f"{row['axis']:<{width}}" + "".join(f"  {row[m]:>12}" for m in table.columns[1:])
        for row in table.rows
    ]
    return "\n".join([table.title, head, *lines])
