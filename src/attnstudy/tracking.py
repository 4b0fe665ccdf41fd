"""MLflow tracking of a study: one experiment per study, one parent run, one child run per
trial (nested through the `mlflow.parentRunId` tag, which works across processes).

Metrics are buffered and written with `log_batch` (each SQLite commit costs milliseconds).
A trial run always ends FINISHED, FAILED or KILLED; runs left RUNNING by a killed process
are found later and closed according to their Optuna trial (`resolve_orphans`).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from attnstudy.artifacts import attention_summary, long_example_attention, write_artifacts
from attnstudy.config import Config, ConfigError
from attnstudy.evaluate import position_metric
from attnstudy.train import TrainResult

ROLE, STUDY, TRIAL, STATUS, REASON = (
    "attnstudy.role",
    "attnstudy.study",
    "attnstudy.trial",
    "attnstudy.status",
    "attnstudy.reason",
)
BLOCK, SOLVABLE = "attnstudy.block", "attnstudy.solvable"  # trial tags, see GridPoint
RUN_STATUS = {"ok": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "killed": "KILLED"}
LOG_EVERY = 10  # training steps between logged train_loss / lr / grad_norm
BATCH_LIMIT = 1000  # metrics per log_batch call (MLflow's limit)


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


def default_tracking_uri(runs_dir: Path) -> str:
    """$MLFLOW_TRACKING_URI, else a SQLite store in runs_dir (separate from Optuna's)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs_dir.resolve()}/mlflow.db"


TRACKING_ALLOWED = "http(s)://HOST:PORT of a running `mlflow server`, sqlite:///PATH, or a DB URL"


def check_tracking_uri(uri: str) -> None:
    """Fail fast (ConfigError) on a tracking URI MLflow cannot use, before anything is
    written: a server that does not answer (MLflow itself retries for minutes), or a URI
    no MLflow store accepts. A SQLite store is created on first use."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"--tracking-uri {uri}: no MLflow server answers there ({err}); allowed: "
                + TRACKING_ALLOWED
            ) from None
    elif not uri.startswith("sqlite:///"):
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException as Unknown

        try:
            MlflowClient(uri)
        except MlflowException as err:
            why = "unknown scheme" if isinstance(err, Unknown) else str(err).split(". ")[0][:200]
            raise ConfigError(
                f"--tracking-uri {uri}: MLflow cannot use it ({why}); allowed: " + TRACKING_ALLOWED
            ) from None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def provenance_tags() -> dict[str, str]:
    """Git commit of the code (and whether tracked files had local edits) and versions of
    the packages that produced a run."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    tags = {
        "attnstudy.git_commit": _git("rev-parse", "HEAD") or "unknown",
        "attnstudy.git_dirty": "unknown" if dirty is None else str(bool(dirty)).lower(),
    }
    for package in ("torch", "mlflow", "optuna", "attnstudy"):
        tags[f"attnstudy.version.{package}"] = version(package)
    return tags


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if not math.isnan(float(v))}


class Tracker:
    """A study's MLflow experiment and parent run, and the factory of trial runs."""

    def __init__(self, uri: str, study: str, artifact_root: Path | None):
        from mlflow import MlflowClient

        self.client, self.study = MlflowClient(uri), study
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
        found = self._search(f"tags.`{ROLE}` = 'study'")
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            from mlflow.entities import Param

            run = self.client.create_run(
                self.experiment_id,
                run_name=self.study,
                tags={ROLE: "study", STUDY: self.study, "mlflow.note.content": description},
            )
            run_id = run.info.run_id
            params = [Param(k, str(v)) for k, v in fixed.items()]
            self.client.log_batch(run_id, params=params)
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)
        return run_id

    def log_grid(self, run_id: str, keys: list[str]) -> None:
        """Every grid key of the study, so a report can name the points still missing."""
        self.client.log_dict(run_id, keys, "grid.json")

    def close(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def start_trial(self, parent_id: str, cfg: Config, name: str, tags: dict) -> TrialRun:
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={"mlflow.parentRunId": parent_id, ROLE: "trial", STUDY: self.study, **tags},
        )
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in cfg.to_dict().items()])
        return TrialRun(self.client, run_id)

    def resolve_orphans(self, outcome: Callable[[int], str | None]) -> int:
        """Close trial runs left RUNNING by a dead process: `outcome(trial_number)` gives
        the status their Optuna trial ended with (None while it is still running). Returns
        how many runs were closed."""
        closed = 0
        for run in self._search(f"attributes.status = 'RUNNING' and tags.`{ROLE}` = 'trial'"):
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
        done = step + 1
        if done % LOG_EVERY == 0 or step == 0:
            for key in ("train_loss", "lr", "grad_norm"):
                self.add(key, record[key], done)
        if "val_seq_acc" in record:
            self.add("val_seq_acc", record["val_seq_acc"], done)
            self.add("val_token_acc", record["val_token_acc"], done)
            self.flush()

    def log_result(self, result: TrainResult, train_seconds: float) -> dict[str, float]:
        """Per-length (step = length), per-position (see `evaluate.position_metric`) and
        summary metrics (step 0), and every artifact. Returns the summary metrics logged."""
        for r in result.per_length:
            self.add("eval_seq_acc", r.seq_acc, r.length)
            self.add("eval_token_acc", r.token_acc, r.length)
        for row in result.per_position:
            key, step = position_metric(row)
            self.add(key, row["token_acc"], step)
        maps, inputs = long_example_attention(result)
        summary = _finite(
            result.summary | attention_summary(result, maps) | {"train_seconds": train_seconds}
        )
        for key, value in summary.items():
            self.add(key, value, 0)
        self.flush()
        with tempfile.TemporaryDirectory() as tmp:
            write_artifacts(result, maps, inputs, Path(tmp))
            self.client.log_artifacts(self.run_id, tmp)
        return summary

    def end(self, status: str, reason: str | None = None) -> None:
        """Flush what is buffered, tag the outcome and terminate the run."""
        from mlflow.entities import RunTag

        self.flush()
        tags = [RunTag(STATUS, status)] + ([RunTag(REASON, reason[:5000])] if reason else [])
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, RUN_STATUS[status])
