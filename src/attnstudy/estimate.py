"""`attnstudy study estimate`: how long a study takes on this machine, measured.

Trains a seeded uniform random sample of the study's grid points (nothing is written to any
store), times each, and projects the whole grid: the mean trial time × the number of
points, with a 95% bootstrap interval over the sample. Also says how many sampled trials
that can solve their task (see `GridPoint.solvable`) reach 95% in-distribution exact match,
i.e. whether the preset's budget suits its models.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from attnstudy.study_config import GridPoint, StudySpec


@dataclass(frozen=True)
class Timed:
    point: GridPoint
    seconds: float
    steps: int
    id_seq_acc: float


@dataclass(frozen=True)
class Estimate:
    points: int  # in the whole grid
    sample: list[Timed]
    hours: float  # one worker: every point one after the other
    hours_ci: tuple[float, float]  # 95% bootstrap interval of `hours`


def sample_points(points: list[GridPoint], n: int, seed: int) -> list[GridPoint]:
    return random.Random(seed).sample(points, min(n, len(points)))


def time_point(point: GridPoint) -> Timed:
    from attnstudy.train import Diverged, run

    start = time.perf_counter()
    try:
        result = run(point.config)
        steps, acc = len(result.history), result.summary["id_seq_acc"]
    except Diverged as err:
        steps, acc = err.step + 1, float("nan")
    return Timed(point, time.perf_counter() - start, steps, acc)


def project(points: int, sample: list[Timed], seed: int) -> Estimate:
    from analysis.aggregate import bootstrap_ci

    seconds = np.array([t.seconds for t in sample])
    low, high = bootstrap_ci(seconds, seed=seed)
    to_hours = points / 3600
    return Estimate(points, sample, seconds.mean() * to_hours, (low * to_hours, high * to_hours))


def estimate_study(
    spec: StudySpec, n: int, seed: int, workers: int, out: TextIO, threads: int | None = None
) -> Estimate:
    """Time `n` sampled points with the threads one of `workers` workers would get, print a
    line for each, then the projection."""
    import torch

    from attnstudy.study import default_threads

    threads = threads or default_threads(workers)
    torch.set_num_threads(threads)
    points = spec.points()
    chosen = sample_points(points, n, seed)
    print(f"study {spec.name}: timing {len(chosen)} of {len(points)} grid points", file=out)
    sample = []
    for point in chosen:
        t = time_point(point)
        sample.append(t)
        print(
            f"  {t.seconds:6.1f} s  {t.steps:5d} steps  id {t.id_seq_acc:.2f}  {point.key}",
            file=out,
            flush=True,
        )
    found = project(len(points), sample, seed)
    print(summary_lines(found, workers, threads), file=out)
    return found


def summary_lines(e: Estimate, workers: int, threads: int) -> str:
    solvable = [t for t in e.sample if t.point.solvable]
    reached = sum(t.id_seq_acc >= 0.95 for t in solvable)
    unsolvable = len(e.sample) - len(solvable)
    left_out = f" ({unsolvable} sampled unsolvable by construction left out)" * bool(unsolvable)
    low, high = e.hours_ci
    return (
        f"mean {e.hours * 3600 / e.points:.1f} s a trial ({threads} torch thread(s), "
        f"tracking not included)\n"
        f"whole grid: {e.hours:.1f} h for one worker (95% interval {low:.1f}-{high:.1f} h), "
        f"{e.hours / workers:.1f} h with {workers} workers if they scale linearly\n"
        f"{reached} of {len(solvable)} sampled trials reach >= 95% in-distribution exact match"
        + left_out
    )
