"""Load one study from MLflow into tidy pandas frames; reads only what the study recorded.

Frames (the contract of ``analysis.aggregate`` and ``analysis.claims``):

- ``runs``: one row per grid point (the latest finished trial of each ``attnstudy.grid_key``;
  when the study logged its grid, only the points of its current grid), config columns,
  summary metrics, ``status`` (ok | diverged | failed) and ``reason``, and the facts its
  variant's classes declared (``schema.VARIANT_FACTS``; None where a trial predates logging
  them: ``analysis.variants.fact`` reads those from the registries). The competence metric
  and ``near_ood_seq_acc``, where a trial predates logging them, are derived from its
  exact match by length. The other frames carry each run's config columns and facts.
- ``lengths``: one row per trial x evaluated length (``eval_seq_acc``/``eval_token_acc``).
- ``positions``: one row per trial x in-distribution length x target position (split "id"),
  and per trial x target position averaged over the longer lengths (split "ood", length
  NaN): the trial's ``per_position.json`` table, or for a trial logged before it had one,
  the metrics ``pos_token_acc_id_len`` (step length·100000 + position) and
  ``pos_token_acc_ood``.
- ``curves``: one row per trial x training metric x step (loss and validation accuracy).
- ``attempts``: every child run of those points, killed and still running ones included.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from attnstudy import schema
from attnstudy.analysis.aggregate import PAIR_COLUMNS
from attnstudy.analysis.effects import (
    COMPETENCE_METRIC,
    NEAR_OOD,
    competence_accuracy,
    near_ood_accuracy,
)
from attnstudy.redact import redact
from attnstudy.tracking_check import default_tracking_uri

TRIAL_FILTER = f"tags.`{schema.ROLE}` = '{schema.TRIAL_ROLE}'"
STUDY_FILTER = f"tags.`{schema.ROLE}` = '{schema.STUDY_ROLE}'"
SUMMARY_METRICS = (
    schema.ID_SEQ_ACC,
    COMPETENCE_METRIC,
    schema.ID_TOKEN_ACC,
    schema.OOD_SEQ_ACC,
    schema.OOD_TOKEN_ACC,
    NEAR_OOD,
    schema.NEAR_OOD_TOKEN_ACC,
    schema.EXTRAPOLATION_LEN,
    schema.EXTRAPOLATION_LEN_50,
    schema.N_PARAMS,
    schema.STEP_TIME_MS,
    schema.PEAK_MEM_MB,
    schema.STEPS_TO_95,
    schema.ATTN_SHARPNESS,
    schema.ATTN_ALIGNMENT,
    schema.ATTN_ALIGNMENT_UNIFORM,
    schema.ATTN_ALIGNMENT_INIT,
    schema.HEAD_DIVERSITY,
    schema.HEAD_DIVERSITY_INIT,
    schema.BEST_STEP,
    schema.STEPS_TRAINED,
    schema.TRAIN_SECONDS,
)
RENAMED_METRICS = {schema.ACTIVATION_MB: schema.PEAK_MEM_MB}
CURVE_METRICS = (schema.TRAIN_LOSS, schema.VAL_SEQ_ACC, "val_token_acc")
LENGTH_METRICS = {schema.EVAL_SEQ_ACC: "seq_acc", schema.EVAL_TOKEN_ACC: "token_acc"}
# the per-position metrics of the runs logged before the position table
POSITION_METRICS = {schema.POSITION_BY_LENGTH_KEY: "id", schema.POSITION_OOD_KEY: "ood"}
POSITION_COLUMNS = ["run_id", "split", "length", "target_pos", "token_acc"]
FINISHED_STATUS_RANK = {"ok": 0, "diverged": 1, "failed": 2}
MLFLOW_STATUS = {"RUNNING": "running", "SCHEDULED": "running", "KILLED": "killed"}
HISTORY_THREADS = 4


class StudyError(LookupError):
    """The study cannot be reported: no store, no such study, or no trial runs yet."""


@dataclass(frozen=True)
class Study:
    """One study as MLflow recorded it, as tidy frames."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent: dict  # run_id, params, tags of the parent (study) run; empty without one
    param_names: tuple[str, ...]  # the Config fields recorded as params, columns of runs
    runs: pd.DataFrame
    lengths: pd.DataFrame
    positions: pd.DataFrame
    curves: pd.DataFrame
    attempts: pd.DataFrame

    grid: list[str] | None  # every grid key, when the parent run has a grid.json artifact

    @property
    def grid_size(self) -> int | None:
        value = self.parent.get("tags", {}).get(schema.GRID_SIZE)
        return int(value) if value not in (None, "") else None


def load_study(name: str, tracking_uri: str | None = None) -> Study:
    """Every trial of study ``name`` as tidy frames; ``StudyError`` if there is nothing."""
    uri = tracking_uri or default_tracking_uri()
    path = uri.removeprefix("sqlite:///")
    if path != uri and not Path(path.split("?")[0]).exists():
        raise StudyError(f"no MLflow store at {redact(path)}; run a study first")
    quiet()
    client = MlflowClient(tracking_uri=uri)
    experiment = _experiment(client, uri, name)
    attempts, params = _attempts(uri, experiment.experiment_id)
    if attempts.empty:
        raise StudyError(f"study {name!r} has no trial runs yet in {redact(uri)}")
    parent = _parent(uri, experiment.experiment_id)
    grid = _grid(client, parent.get("run_id"))
    if grid:  # points a grid change dropped (`--allow-grid-change`) are not the study's
        attempts = attempts[attempts["grid_key"].isin(grid)]
    runs = _latest_per_grid_point(attempts)
    tabled = runs.loc[runs["position_table"], "run_id"].tolist()
    untabled = runs.loc[~runs["position_table"], "run_id"].tolist()
    histories = _histories(client, runs["run_id"].tolist(), untabled)
    config = runs[["run_id", *PAIR_COLUMNS, *schema.VARIANT_FACTS]]
    lengths = _lengths(histories, config)
    runs = runs.assign(
        **{
            COMPETENCE_METRIC: competence_accuracy(runs, lengths),
            NEAR_OOD: near_ood_accuracy(runs, lengths),
        }
    )
    return Study(
        name=name,
        tracking_uri=uri,
        experiment_id=experiment.experiment_id,
        parent=parent,
        grid=grid,
        param_names=tuple(sorted(c for c in params if c in runs)),
        runs=runs.reset_index(drop=True),
        lengths=lengths,
        positions=_all_positions(_position_tables(client, tabled), histories, config),
        curves=_curves(histories, config),
        attempts=attempts[
            ["run_id", "grid_key", "status", "mlflow_status", "reason", "start_time"]
        ],
    )


def save_frames(study: Study, out_dir: Path) -> list[Path]:
    """Write runs, lengths, positions and curves as CSV into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("runs", "lengths", "positions", "curves"):
        path = out_dir / f"{name}.csv"
        getattr(study, name).to_csv(path, index=False)
        paths.append(path)
    return paths


def load_attention(tracking_uri: str, run_id: str) -> dict[str, np.ndarray] | None:
    """The ``attention.npz`` artifact of one trial (keys ``layer{i}_{kind}``: (H, Tq, Tk)
    arrays, and ``inputs``), or None when the trial has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path="attention.npz",
                dst_path=tmp,
                tracking_uri=tracking_uri,
            )
        except (MlflowException, OSError):
            return None
        with np.load(path) as npz:
            return {key: npz[key] for key in npz.files}


def quiet() -> None:
    """No MLflow INFO chatter (store migrations) and no artifact download progress bars."""
    for logger in ("mlflow", "alembic"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _experiment(client: MlflowClient, uri: str, name: str):
    """The study's experiment, or StudyError naming the studies the store holds."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        known = ", ".join(known) or "none"
        raise StudyError(f"no study named {name!r} in {redact(uri)}; known: {known}")
    return experiment


def _search(uri: str, experiment_id: str, filter_string: str) -> pd.DataFrame:
    """``mlflow.search_runs`` against ``uri``, leaving the global tracking URI as it was."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(
            experiment_ids=[experiment_id], filter_string=filter_string, output_format="pandas"
        )
    finally:
        mlflow.set_tracking_uri(previous)


def _attempts(uri: str, experiment_id: str) -> tuple[pd.DataFrame, list[str]]:
    """Every trial run (params and metrics without prefixes, typed; status from the tags)
    and the names of the params."""
    raw = _search(uri, experiment_id, TRIAL_FILTER)
    if raw.empty:
        return raw, []
    frame = pd.DataFrame({"run_id": raw["run_id"], "start_time": raw["start_time"]})
    frame["mlflow_status"] = raw["status"]
    frame["status"] = [
        _status(t, s)
        for t, s in zip(_col(raw, f"tags.{schema.STATUS}"), raw["status"], strict=True)
    ]
    frame["reason"] = _col(raw, f"tags.{schema.REASON}").fillna("")
    frame["grid_key"] = _col(raw, f"tags.{schema.GRID_KEY}").fillna(raw["run_id"])
    frame["config_hash"] = _col(raw, f"tags.{schema.CONFIG_HASH}")
    frame["git_commit"] = _col(raw, f"tags.{schema.GIT_COMMIT}")
    frame["block"] = _col(raw, f"tags.{schema.BLOCK}").fillna("")
    frame["solvable"] = _col(raw, f"tags.{schema.SOLVABLE}").fillna("true") != "false"
    frame["position_table"] = _col(raw, f"tags.{schema.LOGGED_ARTIFACTS}").map(
        _lists_position_table
    )
    params = {c.removeprefix("params."): raw[c].map(_parse) for c in raw if c.startswith("params.")}
    metrics = {c.removeprefix("metrics."): raw[c] for c in raw if c.startswith("metrics.")}
    metrics = {RENAMED_METRICS.get(k, k): v for k, v in metrics.items()}
    versions = {c.removeprefix(f"tags.{schema.PREFIX}"): raw[c] for c in raw if ".version." in c}
    facts = {f: _col(raw, f"tags.{f}").map(_fact) for f in schema.VARIANT_FACTS}
    frame = pd.concat([frame, pd.DataFrame(params | versions | facts)], axis=1)
    frame = frame.assign(**{m: metrics.get(m, np.nan) for m in SUMMARY_METRICS})
    return _resolve_config(frame), list(params)


def _col(raw: pd.DataFrame, name: str) -> pd.Series:
    return raw[name] if name in raw else pd.Series([None] * len(raw), index=raw.index)


def _lists_position_table(logged: str | None) -> bool:
    """Whether a run's ``mlflow.loggedArtifacts`` tag (what ``log_table`` records) lists the
    per-position table."""
    if not isinstance(logged, str) or not logged:
        return False
    return any(item.get("path") == schema.POSITION_TABLE for item in json.loads(logged))


def _status(tag: str | None, mlflow_status: str) -> str:
    """The study's verdict tag; a run without one is still running or was killed."""
    if isinstance(tag, str) and tag:
        return tag
    return MLFLOW_STATUS.get(mlflow_status, "failed")


def _fact(tag: str | None) -> str | bool | None:
    """A variant fact as tracking tags it: a flag ("true"/"false") as a bool, a family as
    text; None where the run has no such tag."""
    if not isinstance(tag, str):
        return None
    return {"true": True, "false": False}.get(tag, tag)


def _parse(value):
    """MLflow stores params as strings: back to bool, int or float where they parse."""
    if not isinstance(value, str):
        return value
    if value in ("True", "False"):
        return value == "True"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _resolve_config(frame: pd.DataFrame) -> pd.DataFrame:
    """Every config column present. Runs log their resolved config (`make_config`), but
    stores started before it resolved defaults (issue 31) logged eval_max_len 0: read as
    4 x train_max_len. The other defaults it resolves are no config column here."""
    for column in PAIR_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    frame["randomized"] = frame["randomized"].fillna(False).astype(bool)
    zero = frame["eval_max_len"] == 0
    frame.loc[zero, "eval_max_len"] = 4 * frame.loc[zero, "train_max_len"]
    return frame


def _latest_per_grid_point(attempts: pd.DataFrame) -> pd.DataFrame:
    """One finished trial per grid key: ok before diverged before failed, then the latest."""
    finished = attempts[attempts["status"].isin(FINISHED_STATUS_RANK)]
    ranked = finished.assign(_rank=finished["status"].map(FINISHED_STATUS_RANK))
    ranked = ranked.sort_values(["_rank", "start_time"], ascending=[True, False])
    return ranked.drop_duplicates("grid_key").drop(columns="_rank").sort_values("grid_key")


def _parent(uri: str, experiment_id: str) -> dict:
    """run_id, params and tags (without prefixes) of the study's parent run."""
    raw = _search(uri, experiment_id, STUDY_FILTER)
    if raw.empty:
        return {}
    row = raw.sort_values("start_time").iloc[-1]
    pick = {"params": "params.", "tags": "tags."}
    out = {k: {c.removeprefix(p): row[c] for c in raw if c.startswith(p)} for k, p in pick.items()}
    return out | {"run_id": row["run_id"]}


def _grid(client: MlflowClient, parent_id: str | None) -> list[str] | None:
    """The grid keys of the study, from the parent run's optional ``grid.json`` artifact (a
    JSON list of keys, or of objects with a "key")."""
    if parent_id is None or schema.GRID_ARTIFACT not in {
        a.path for a in client.list_artifacts(parent_id)
    }:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(parent_id, schema.GRID_ARTIFACT, tmp)
        items = json.loads(Path(path).read_text())
    return [item["key"] if isinstance(item, dict) else str(item) for item in items]


def _histories(client: MlflowClient, run_ids: list[str], untabled: list[str]) -> pd.DataFrame:
    """Every logged value of the per-step metrics: run_id, key, step, value (latest write of
    each step), the per-position ones only for the `untabled` runs (without a position
    table). One query per run and key, a few at a time."""
    jobs = [(run_id, key) for run_id in run_ids for key in (*LENGTH_METRICS, *CURVE_METRICS)]
    jobs += [(run_id, key) for run_id in untabled for key in POSITION_METRICS]

    def fetch(job):
        run_id, key = job
        return [
            (run_id, key, m.step, m.value, m.timestamp)
            for m in client.get_metric_history(run_id, key)
        ]

    with ThreadPoolExecutor(HISTORY_THREADS) as pool:
        rows = [row for rows in pool.map(fetch, jobs) for row in rows]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])
    frame = frame.sort_values("timestamp").drop_duplicates(["run_id", "key", "step"], keep="last")
    return frame.drop(columns="timestamp").sort_values(["run_id", "key", "step"])


def _lengths(histories: pd.DataFrame, config: pd.DataFrame) -> pd.DataFrame:
    """One row per run x length: seq_acc, token_acc, n (None: not recorded as a metric)."""
    frame = histories[histories["key"].isin(LENGTH_METRICS)]
    wide = frame.pivot_table(index=["run_id", "step"], columns="key", values="value")
    wide = wide.rename(columns=LENGTH_METRICS).reset_index().rename(columns={"step": "length"})
    for column in LENGTH_METRICS.values():
        if column not in wide:
            wide[column] = np.nan
    out = config.merge(wide, on="run_id")
    out["in_distribution"] = out["length"] <= out["train_max_len"]
    return out


def _position_tables(client: MlflowClient, run_ids: list[str]) -> pd.DataFrame:
    """The per-position tables of runs `run_ids` (POSITION_COLUMNS), a few at a time."""

    def fetch(run_id: str) -> pd.DataFrame:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, schema.POSITION_TABLE, tmp)
            table = json.loads(Path(path).read_text())  # MLflow's table: columns and data
            return pd.DataFrame(table["data"], columns=table["columns"]).assign(run_id=run_id)

    with ThreadPoolExecutor(HISTORY_THREADS) as pool:
        tables = list(pool.map(fetch, run_ids))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _all_positions(
    tables: pd.DataFrame, histories: pd.DataFrame, config: pd.DataFrame
) -> pd.DataFrame:
    """The runs' position tables, and the packed per-position metrics of the runs without
    one (`_positions`), as one frame."""
    packed = _positions(histories, config)
    if tables.empty:
        return packed
    tabled = config.merge(tables[POSITION_COLUMNS], on="run_id")
    return pd.concat([tabled, packed], ignore_index=True) if not packed.empty else tabled


def _positions(histories: pd.DataFrame, config: pd.DataFrame) -> pd.DataFrame:
    """One row per run x split (id|ood) x length (NaN for ood) x target position: token_acc,
    from the per-position metrics of runs logged before the position table. In-distribution
    steps encode length·POSITION_STRIDE + target position."""
    frame = histories[histories["key"].isin(POSITION_METRICS)]
    split = frame["key"].map(POSITION_METRICS)
    by_length = split == "id"
    frame = frame.assign(
        split=split,
        length=(frame["step"] // schema.POSITION_STRIDE).where(by_length),
        target_pos=frame["step"].where(~by_length, frame["step"] % schema.POSITION_STRIDE),
        token_acc=frame["value"],
    )
    return config.merge(frame[POSITION_COLUMNS], on="run_id")


def _curves(histories: pd.DataFrame, config: pd.DataFrame) -> pd.DataFrame:
    """One row per run x training metric x step."""
    frame = histories[histories["key"].isin(CURVE_METRICS)].rename(columns={"key": "metric"})
    return config.merge(frame, on="run_id")
