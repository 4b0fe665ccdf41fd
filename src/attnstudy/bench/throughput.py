"""Section 6: study throughput on this machine — trials per hour of a small study run
with 1 and with 2 workers, each against fresh stores in a temporary directory."""

from __future__ import annotations

import io
import itertools
import tempfile
from pathlib import Path

import torch
import yaml

from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import Plan, trial_config
from attnstudy.bench.timing import timed
from attnstudy.provenance import usable_cores

SECTION = "6. study throughput"
ROUNDS = 2  # runs per worker count, alternating


def study_file(plan: Plan, directory: Path) -> Path:
    """A study of identical typical trials (`trial_config`) that differ only in their seed."""
    fixed = {k: v for k, v in trial_config(plan).to_dict().items() if k != "seed"}
    spec = dict(
        name="bench-throughput",
        description="benchmark: identical trials, seeds differ",
        tasks=[fixed.pop("task")],
        fixed=fixed | {"device": "cpu"},
        axes={"seed": list(range(plan.throughput_trials))},
    )
    path = directory / "bench-throughput.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_timed(path: Path, workers: int, runs_dir: Path) -> tuple[float, float]:
    """Run the study with `workers` workers on fresh stores: (trials per hour over the wall
    time of `study run`, trials per hour between the first trial's start and the last
    trial's end, i.e. without start-up of stores and worker processes)."""
    import optuna

    from attnstudy.stores import make_stores
    from attnstudy.study import run_study
    from attnstudy.study_config import load_study

    spec = load_study(path)
    stores = make_stores(runs_dir, tracking_uri=f"sqlite:///{runs_dir.resolve()}/mlflow.db")
    threads = torch.get_num_threads()
    try:
        code, wall = timed(
            lambda: run_study(spec, stores, workers, threads=per_worker(), out=io.StringIO())
        )
    finally:
        torch.set_num_threads(threads)  # a 1-worker study sets this process's threads
    if code != 0:
        raise RuntimeError(f"benchmark study with {workers} workers exited with {code}")
    trials = optuna.load_study(study_name=spec.name, storage=stores.storage_url).trials
    start = min(t.datetime_start for t in trials)
    span = (max(t.datetime_complete for t in trials) - start).total_seconds()
    return len(trials) / wall * 3600, len(trials) / span * 3600


def best_of_rounds(path: Path, root: Path) -> dict[int, tuple[float, float]]:
    """Per worker count, the best (wall, steady) trials per hour over ROUNDS alternating
    runs: the least disturbed by other load on a shared machine."""
    best: dict[int, tuple[float, float]] = {1: (0.0, 0.0), 2: (0.0, 0.0)}
    for r, workers in itertools.product(range(ROUNDS), best):
        wall, steady = run_timed(path, workers, root / f"r{r}w{workers}")
        best[workers] = (max(best[workers][0], wall), max(best[workers][1], steady))
    return best


def throughput_rows(plan: Plan) -> list[Row]:
    cfg = trial_config(plan)
    what = f"{plan.throughput_trials} trials like {cfg.score} + {cfg.position}, H{cfg.heads}"
    if plan.quick:
        return [row(SECTION, what, float("nan"), "trials/h", note="skipped with --quick")]
    with tempfile.TemporaryDirectory() as tmp:
        best = best_of_rounds(study_file(plan, Path(tmp)), Path(tmp))
    (one_wall, one), (two_wall, two) = best[1], best[2]
    steady = f"first trial start to last trial end; best of {ROUNDS} runs"
    wall = "wall time of `study run`, incl. creating stores and starting workers"
    return [
        row(SECTION, f"1 worker x {per_worker()} thread(s): {what}", one, "trials/h", note=steady),
        row(
            SECTION,
            f"2 workers x {per_worker()} thread(s) vs 1: {what}",
            two,
            "trials/h",
            one,
            (">=", 1.6),
            note=steady,
        ),
        row(SECTION, f"2 workers vs 1, wall: {what}", two_wall, "trials/h", one_wall, note=wall),
    ]


def per_worker() -> int:
    """Torch threads of every worker, with 1 and with 2 workers alike: half the cores (a
    1-worker study would take all of them by default, which on a loaded machine makes
    every parallel op wait for a core and trials several times slower)."""
    return max(1, usable_cores() // 2)
