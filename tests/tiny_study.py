"""A tiny real study for the report tests: real training runs logged to a real SQLite MLflow
store by the study's own tracking code (attnstudy.tracking), without Optuna."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from builders import TINY_TRAINING

from attnstudy.provenance import provenance_tags
from attnstudy.registries import make_config
from attnstudy.schema import CONFIG_HASH, GRID_KEY, GRID_SIZE, TRIAL
from attnstudy.tracking import Tracker, silence
from attnstudy.train import run

# The settings every point of the report's study shares (its points add the axis values):
# builders.TINY_TRAINING less heads (an axis here), with the steps, validation and batch sizes
# the report's numbers come from; the report logs these as the study's parameters.
FIXED = {k: v for k, v in TINY_TRAINING.items() if k != "heads"} | dict(
    task="copy", steps=20, val_samples=32, batch_size=16, lr=3e-3, device="cpu"
)


def grid_key(values: dict) -> str:
    return ",".join(f"{k}={values[k]}" for k in sorted(values))


def make_study(
    root: Path,
    name: str,
    grid: list[dict],
    grid_size: int | None = None,
    diverged: tuple[dict, ...] = (),
    killed: tuple[dict, ...] = (),
) -> str:
    """Train and log every point of ``grid`` (axis values over FIXED) under one parent run;
    log the points of ``diverged`` as diverged trials without training, and an earlier
    killed attempt at each point of ``killed``. Returns the tracking URI."""
    silence()
    torch.set_num_threads(1)  # the machine is shared
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = Tracker(uri, name, root / "artifacts")
    size = grid_size or len(grid) + len(diverged)
    parent = tracker.open_parent(FIXED, {GRID_SIZE: str(size)}, "tiny test study")
    for number, point in enumerate([*killed, *grid, *diverged]):
        cfg = make_config(**FIXED, **point)
        tags = {
            TRIAL: str(number),
            GRID_KEY: grid_key(point),
            CONFIG_HASH: cfg.hash(),
            **provenance_tags(),
        }
        trial = tracker.start_trial(parent, cfg, tags)
        if number < len(killed) or point in diverged:
            status = "killed" if number < len(killed) else "diverged"
            trial.end(status, "diverged at step 3: loss = nan" if status == "diverged" else None)
            continue
        start = time.perf_counter()
        result = run(cfg, trial.on_step)
        trial.log_result(result, time.perf_counter() - start)
        trial.end("ok")
    tracker.close(parent, "FINISHED")
    return uri
