"""Section 7: overheads inside one real trial, as shares of its wall time — generating the
training data, and MLflow tracking (run creation, buffered metrics, result metrics and
artifacts, closing the run)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import Plan, trial_config
from attnstudy.bench.timing import timed
from attnstudy.config import Config
from attnstudy.tasks import build_task
from attnstudy.train import (
    TrainResult,
    Validator,
    run,
    training_batches,
    validate_in_distribution,
)

SECTION = "7. overheads in a trial"


def data_seconds(cfg: Config, steps: int) -> float:
    """Time to draw `steps` training batches exactly as train.run does."""
    batches = training_batches(build_task(cfg.task, cfg.eval_max_len), cfg, "cpu")
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return time.perf_counter() - start


def tracked_trial(
    cfg: Config, root: Path, validator: Validator = validate_in_distribution
) -> tuple[float, float, TrainResult]:
    """Run one trial logged to a fresh MLflow store: (wall seconds, seconds inside tracking
    calls, the result). Store creation (once per study) is not counted."""
    from attnstudy.tracking import Tracker, silence

    silence()
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "bench-overheads", root / "artifacts")
    parent = tracker.open_parent({}, {}, "benchmark of tracking overhead")
    tracking = 0.0
    start = time.perf_counter()
    mlrun, seconds = timed(lambda: tracker.start_trial(parent, cfg, {}))
    tracking += seconds

    def on_step(step, record):
        nonlocal tracking
        tracking += timed(lambda: mlrun.on_step(step, record))[1]

    result, train_seconds = timed(lambda: run(cfg, on_step, validator))
    tracking += timed(lambda: mlrun.log_result(result, train_seconds))[1]
    tracking += timed(lambda: mlrun.end("ok"))[1]
    return time.perf_counter() - start, tracking, result


def artifact_seconds(result: TrainResult, directory: Path) -> float:
    """Time to write the trial's artifact files once more (plots, attention npz, model), the
    part of `log_result` that is not MLflow's."""
    from attnstudy.artifacts import write_artifacts

    directory.mkdir()
    start = time.perf_counter()
    write_artifacts(result, directory)
    return time.perf_counter() - start


def overhead_rows(plan: Plan) -> list[Row]:
    cfg = trial_config(plan)
    with tempfile.TemporaryDirectory() as tmp:
        wall, tracking, result = tracked_trial(cfg, Path(tmp))
        artifacts = artifact_seconds(result, Path(tmp) / "again")
    steps = len(result.history)
    data = data_seconds(cfg, steps)
    what = f"one trial ({steps} steps, {cfg.score} + {cfg.position}, H{cfg.heads}, {wall:.1f} s)"
    return [
        row(SECTION, f"data generation: {what}", data, "s", wall, ("<", 0.05)),
        row(
            SECTION,
            f"MLflow tracking: {what}",
            tracking,
            "s",
            wall,
            ("<", 0.03),
            note="run creation, step metrics, results, artifacts, end",
        ),
        row(
            SECTION,
            f"of which making artifact files: {what}",
            artifacts,
            "s",
            wall,
            note="PNG plots, attention npz, model.pt (attnstudy.artifacts)",
        ),
    ]
