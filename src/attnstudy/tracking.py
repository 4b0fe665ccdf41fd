"""MLflow tracking of a study: one experiment per study, one parent run, one child run per
trial (nested through the `mlflow.parentRunId` tag, which works across processes).

The experiment is tagged as model training (MLflow 3 otherwise opens it on its GenAI pages).
A trial run is named after its variant (`copy·decoder·rope·scaled_dot·h4·s0`) and tagged with
each axis, the facts its classes declare (schema.VARIANT_FACTS) and the machine (CPU,
threads, device: provenance.py), so the UI can group runs by any of them; its accuracy by
length is the metric history of `eval_seq_acc` / `eval_token_acc` at step = length, by
target position the table `per_position.json` (`log_table`). The parent run carries the
study's summary: points per state and the best variant of each encoding by validation
(whose models logged_model.py logs there), and the launcher's system metrics when psutil
is installed.

Metrics are buffered and written with `log_batch` (each SQLite commit costs milliseconds).
A trial run always ends FINISHED, FAILED or KILLED; runs left RUNNING by a killed process
are found later and closed according to their Optuna trial (`resolve_orphans`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import fmean

from attnstudy.artifacts import write_artifacts
from attnstudy.config import Config, ConfigError
from attnstudy.environment import log_environment
from attnstudy.provenance import device_name, host_tags
from attnstudy.redact import redact
from attnstudy.registries import declared_facts
from attnstudy.schema import (
    BEST_VAL_NEXT_TOKEN_ACC,
    BEST_VAL_SEQ_ACC,
    DESCRIPTION,
    DEVICE,
    EVAL_SEQ_ACC,
    EVAL_TOKEN_ACC,
    EXPERIMENT_KIND,
    GRID_ARTIFACT,
    ID_SEQ_ACC,
    NOTE,
    OOD_SEQ_ACC,
    PARENT_RUN,
    POSITION_TABLE,
    REASON,
    ROLE,
    SELECTION,
    STATUS,
    STEP_METRICS,
    STUDY,
    STUDY_ROLE,
    TRAIN_SECONDS,
    TRIAL,
    TRIAL_ROLE,
    VAL_NEXT_TOKEN_ACC,
    VAL_SEQ_ACC,
    best_variant,
    points_metric,
)
from attnstudy.train import TrainResult

REPORTED = (ID_SEQ_ACC, OOD_SEQ_ACC)  # test exact match: shown, never used to choose
RUN_STATUS = {"ok": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "killed": "KILLED"}
LOG_EVERY = 10  # training steps between logged train_loss / lr / grad_norm
BATCH_LIMIT = 1000  # metrics per log_batch call (MLflow's limit)
SYSTEM_METRICS_S = 5  # seconds between samples ($MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL wins)


def silence() -> None:
    """No INFO chatter from MLflow, Optuna or alembic migrations; no experimental warnings.
    (The environment variables also reach spawned workers before they import MLflow.)"""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run at"
    import mlflow  # noqa: F401  (configures its loggers on import; override them after)
    import optuna

    for name in ("mlflow", "alembic", "optuna", "sqlalchemy", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", module="mlflow")


def run_name(cfg: Config, seed: bool = True) -> str:
    """A trial run's short name, e.g. copy·decoder·rope·scaled_dot·h4·s0 (·rand: randomized
    positions); with seed=False, the name of its variant."""
    parts = [cfg.task, cfg.arch, cfg.position, cfg.score, f"h{cfg.heads}"]
    return "·".join(parts + [f"s{cfg.seed}"] * seed + ["rand"] * cfg.randomized)


def variant_tags(cfg: Config) -> dict[str, str]:
    """A tag per axis and per fact its classes declare: for the MLflow UI and the analysis."""
    facts = declared_facts(cfg.task, cfg.arch, cfg.position, cfg.score)
    return {
        "task": cfg.task,
        "arch": cfg.arch,
        "encoding": cfg.position,
        "score": cfg.score,
        "heads": str(cfg.heads),
        "seed": str(cfg.seed),
        "randomized": str(cfg.randomized).lower(),
    } | {name: str(value).lower() for name, value in facts.items()}


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if not math.isnan(float(v))}


def tag_as_training(client, experiment_id: str) -> None:
    """Mark the experiment as model training, so MLflow 3 opens it on its runs."""
    for key, value in EXPERIMENT_KIND.items():
        client.set_experiment_tag(experiment_id, key, value)


def selected_validation(history: list[dict]) -> dict[str, float]:
    """The in-distribution validation exact match and next-token accuracy of the checkpoint
    train.run keeps (the first with the highest validation exact match)."""
    checks = [r for r in history if VAL_SEQ_ACC in r]
    best = max(checks, key=lambda r: r[VAL_SEQ_ACC])
    return {BEST_VAL_SEQ_ACC: best[VAL_SEQ_ACC], BEST_VAL_NEXT_TOKEN_ACC: best[VAL_NEXT_TOKEN_ACC]}


def best_per_encoding(results: list[tuple[Config, dict]]) -> dict[str, dict]:
    """For each encoding, its variant (a config up to the seed; seeds averaged) with the
    best in-distribution validation exact match, ties broken by validation token accuracy,
    then by name: test lengths never take part in the choice. Each row: the variant's name,
    seeds, the means of the SELECTION metrics, id_seq_acc and ood_seq_acc, and `selected`:
    the (config, summary) of its seed with the best validation (ties: the lowest seed),
    whose model stands for the variant. Results without validation metrics are left out."""
    variants: dict[Config, list[tuple[Config, dict]]] = {}
    for cfg, summary in results:
        if all(key in summary for key in SELECTION):
            variants.setdefault(dataclasses.replace(cfg, seed=0), []).append((cfg, summary))
    best: dict[str, dict] = {}
    for variant in sorted(variants, key=lambda c: (run_name(c, seed=False), c.hash())):
        runs = [summary for _, summary in variants[variant]]
        row = {"variant": run_name(variant, seed=False), "seeds": len(runs)}
        row["selected"] = max(
            variants[variant], key=lambda r: ([r[1][k] for k in SELECTION], -r[0].seed)
        )
        row |= {k: fmean(s.get(k, math.nan) for s in runs) for k in (*SELECTION, *REPORTED)}
        chosen = best.get(variant.position)
        if chosen is None or [row[k] for k in SELECTION] > [chosen[k] for k in SELECTION]:
            best[variant.position] = row
    return best


def summary_markdown(points: dict[str, int], best: dict[str, dict]) -> str:
    """The parent run's description of the study's state and best variants."""
    lines = ["**Grid points:** " + ", ".join(f"{n} {state}" for state, n in points.items())]
    if best:
        lines += [
            "",
            "**Best variant per encoding**, chosen on in-distribution validation exact match "
            "(mean over seeds); ID and OOD: exact match on test lengths within and beyond "
            "training, reported, never used to choose.",
            "",
            "| encoding | variant | seeds | validation | ID | OOD |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {enc} | {r['variant']} | {r['seeds']} | {r[BEST_VAL_SEQ_ACC]:.3f} "
            f"| {r[ID_SEQ_ACC]:.3f} | {r[OOD_SEQ_ACC]:.3f} |"
            for enc, r in sorted(best.items())
        ]
    return "\n".join(lines)


# The runs page's view: MLflow's model-training pages (not its GenAI ones, whatever the UI
# showed last), runs sorted by name, which lists the trials flat rather than folded under
# the study's run (MLflow nests child runs only when sorted by creation time).
RUNS_VIEW = "workflowType=machine_learning&orderByKey=tags.%60mlflow.runName%60&orderByAsc=true"


def runs_page(uri: str, study: str, server: str) -> str:
    """The URL of the study's runs in the MLflow UI at `server`, tagging its experiment as
    model training (stores made before the tag); ConfigError if the store lacks the study."""
    from mlflow import MlflowClient

    if (
        uri.startswith("sqlite:///")
        and not Path(uri.removeprefix("sqlite:///").split("?")[0]).exists()
    ):
        raise ConfigError(f"no MLflow store at {redact(uri)}: run the study first (make study)")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        found = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ConfigError(f"--study {study}: no such experiment in {redact(uri)}; there: {found}")
    tag_as_training(client, experiment.experiment_id)
    return f"{server}/#/experiments/{experiment.experiment_id}/runs?{RUNS_VIEW}"


class Tracker:
    """A study's MLflow experiment and parent run, and the factory of trial runs."""

    def __init__(self, uri: str, study: str, artifact_root: Path | None):
        from mlflow import MlflowClient

        self.client, self.uri, self.study = MlflowClient(uri), uri, study
        experiment = self.client.get_experiment_by_name(study)
        if experiment is None:
            location = None
            if artifact_root is not None and not uri.startswith(("http:", "https:")):
                location = (artifact_root.resolve() / study).as_uri()
            self.experiment_id = self.client.create_experiment(study, location)
        else:
            self.experiment_id = experiment.experiment_id

    def _search(self, where: str) -> list:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], where, max_results=1000, page_token=token
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def open_parent(self, fixed: dict, tags: dict[str, str], description: str) -> str:
        """The study's parent run, created on first use (params: the fixed settings) and
        marked RUNNING again by every later `study run`."""
        found = self._search(f"tags.`{ROLE}` = '{STUDY_ROLE}'")
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            from mlflow.entities import Param

            run = self.client.create_run(
                self.experiment_id,
                run_name=self.study,
                tags={
                    ROLE: STUDY_ROLE,
                    STUDY: self.study,
                    DESCRIPTION: description,  # the run's note becomes the summary later
                    NOTE: description,
                },
            )
            run_id = run.info.run_id
            params = [Param(k, str(v)) for k, v in fixed.items()]
            self.client.log_batch(run_id, params=params)
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)
        log_environment(self.client, run_id)
        tag_as_training(self.client, self.experiment_id)
        return run_id

    def log_grid(self, run_id: str, keys: list[str]) -> None:
        """Every grid key of the study, so a report can name the points still missing."""
        self.client.log_dict(run_id, keys, GRID_ARTIFACT)

    def close(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    @contextmanager
    def system_metrics(self, run_id: str) -> Iterator[None]:
        """While the block runs, MLflow samples this machine's CPU, memory, disk, network
        (and GPU) use into run `run_id` (metrics `system/…`, after those already there)
        every SYSTEM_METRICS_S seconds; nothing without psutil. Its thread ends with the
        block."""
        if importlib.util.find_spec("psutil") is None:
            yield
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            run_id, SYSTEM_METRICS_S, resume_logging=True, tracking_uri=self.uri
        )
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()

    def log_summary(
        self, run_id: str, description: str, points: dict[str, int], results: list
    ) -> dict[str, dict]:
        """The study's summary on its parent run: a metric `points_<state>` per point
        state, a tag `best.<encoding>` naming the encoding's best variant, and both as a
        table in the run's description. `results`: (config, summary metrics) per point done.
        Returns `best_per_encoding(results)`."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        best = best_per_encoding(results)
        metrics = [Metric(points_metric(state), n, now, 0) for state, n in points.items()]
        tags = [RunTag(best_variant(enc), row["variant"]) for enc, row in best.items()]
        note = f"{description}\n\n{summary_markdown(points, best)}".strip()
        tags.append(RunTag(NOTE, note))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        return best

    def start_trial(self, parent_id: str, cfg: Config, tags: dict) -> TrialRun:
        """A trial run named after cfg's variant and seed, tagged with its axes and the
        machine it runs on (the torch threads of the calling process)."""
        import torch
        from mlflow.entities import Param

        tags = {
            PARENT_RUN: parent_id,
            ROLE: TRIAL_ROLE,
            STUDY: self.study,
            **variant_tags(cfg),
            **host_tags(torch.get_num_threads()),
            DEVICE: device_name(cfg),
            **tags,
        }
        run = self.client.create_run(self.experiment_id, run_name=run_name(cfg), tags=tags)
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in cfg.to_dict().items()])
        return TrialRun(self.client, run_id)

    def resolve_orphans(self, outcome: Callable[[int], str | None]) -> int:
        """Close trial runs left RUNNING by a dead process: `outcome(trial_number)` gives
        the status their Optuna trial ended with (None while it is still running). Returns
        how many runs were closed."""
        closed = 0
        for run in self._search(
            f"attributes.status = 'RUNNING' and tags.`{ROLE}` = '{TRIAL_ROLE}'"
        ):
            number = run.data.tags.get(TRIAL)
            status = "killed" if number is None else outcome(int(number))
            if status is not None:
                TrialRun(self.client, run.info.run_id).end(status, run.data.tags.get(REASON))
                closed += 1
        return closed


class TrialRun:
    """One trial's MLflow run: buffered metrics, results, artifacts and its final status."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id
        self.buffer: list = []

    def add(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self.buffer.append(Metric(key, float(value), int(time.time() * 1000), step))

    def flush(self) -> None:
        for i in range(0, len(self.buffer), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=self.buffer[i : i + BATCH_LIMIT])
        self.buffer = []

    def on_step(self, step: int, record: dict[str, float]) -> None:
        """train.run callback: step metrics at step = optimizer steps done; flushed at
        every validation so the UI follows training."""
        steps_done = step + 1
        if steps_done % LOG_EVERY == 0 or step == 0:
            for key in STEP_METRICS:
                self.add(key, record[key], steps_done)
        if VAL_SEQ_ACC in record:
            self.add(VAL_SEQ_ACC, record[VAL_SEQ_ACC], steps_done)
            self.add(VAL_NEXT_TOKEN_ACC, record[VAL_NEXT_TOKEN_ACC], steps_done)
            self.flush()

    def log_result(self, result: TrainResult, train_seconds: float) -> dict[str, float]:
        """Per-length (step = length) and summary metrics (step 0), the per-position table
        (`evaluate.position_table` rows) and every artifact. Returns the summary metrics
        logged."""
        import pandas as pd

        for r in result.per_length:
            self.add(EVAL_SEQ_ACC, r.seq_acc, r.length)
            self.add(EVAL_TOKEN_ACC, r.token_acc, r.length)
        self.client.log_table(self.run_id, pd.DataFrame(result.per_position), POSITION_TABLE)
        summary = _finite(
            result.summary | selected_validation(result.history) | {TRAIN_SECONDS: train_seconds}
        )
        for key, value in summary.items():
            self.add(key, value, 0)
        self.flush()
        with tempfile.TemporaryDirectory() as tmp:
            write_artifacts(result, Path(tmp))
            self.client.log_artifacts(self.run_id, tmp)
        return summary

    def end(self, status: str, reason: str | None = None) -> None:
        """Flush what is buffered, tag the outcome and terminate the run."""
        from mlflow.entities import RunTag

        self.flush()
        tags = [RunTag(STATUS, status)] + ([RunTag(REASON, reason[:5000])] if reason else [])
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, RUN_STATUS[status])
