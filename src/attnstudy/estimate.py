"""`attnstudy study estimate`: how long a study takes on this machine, measured.

Trains a seeded uniform random sample of the study's grid points (nothing is written to any
store), as many at once as the study has workers so that they share the cores as its
workers would, times each, and projects the whole grid: the mean trial time × the number of
points, with a 95% bootstrap interval over the sample. Also says how many sampled trials
that can solve their task (see `GridPoint.solvable`) are competent by the analysis's gate
(exact match >= 0.95 at the longest training length, `COMPETENT`), i.e. whether the
preset's budget suits its models. With a CSV path it also writes the sample, one row per
trial (its config, seconds, ID exact match, that at the longest training length, steps to
95%), which
`python -m attnstudy.analysis.calibration NAME@PATH` turns into a calibration section.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import queue
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from attnstudy.schema import (
    GIT_COMMIT,
    GIT_DIRTY,
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    STEPS_TO_95,
    STEPS_TRAINED,
)
from attnstudy.study_config import GridPoint, StudySpec

COMPETENT = 0.95  # least exact match at the longest training length of a competent trial


@dataclass(frozen=True)
class Timed:
    point: GridPoint
    seconds: float
    steps: int
    id_seq_acc: float
    pid: int  # the process that trained it
    steps_to_95: float = math.nan  # steps until validation first reached 95% (nan: never)
    id_seq_acc_at_max: float = math.nan  # exact match at the longest training length

    @property
    def competent(self) -> bool:
        return self.id_seq_acc_at_max >= COMPETENT


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
        summary = result.summary
        steps, acc, to_95 = len(result.history), summary[ID_SEQ_ACC], summary[STEPS_TO_95]
        at_max = summary[ID_SEQ_ACC_AT_MAX]
    except Diverged as err:
        steps, acc, to_95, at_max = err.step + 1, math.nan, math.nan, math.nan
    return Timed(point, time.perf_counter() - start, steps, acc, os.getpid(), to_95, at_max)


def _time_share(share: list[tuple[int, GridPoint]], threads: int, results) -> None:
    import torch

    torch.set_num_threads(threads)
    for index, point in share:
        results.put((index, time_point(point)))


def time_points(
    points: list[GridPoint], workers: int, threads: int, on_timed: Callable[[Timed], None]
) -> list[Timed]:
    """Train `points` in `workers` processes at once (process i takes every workers-th
    point), calling `on_timed` as each trial ends; returns them in the order given."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    indexed = list(enumerate(points))
    procs = [
        context.Process(target=_time_share, args=(indexed[i::workers], threads, results))
        for i in range(min(workers, len(points)))
    ]
    for p in procs:
        p.start()
    timed: dict[int, Timed] = {}
    try:
        while len(timed) < len(points):
            try:
                index, t = results.get(timeout=1.0)
            except queue.Empty:
                crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if crashed:
                    raise RuntimeError(
                        f"an estimate process died (exit code {crashed[0]})"
                    ) from None
                continue
            timed[index] = t
            on_timed(t)
    finally:
        for p in procs:
            p.terminate()
            p.join()
    return [timed[i] for i in range(len(points))]


def project(points: int, sample: list[Timed], seed: int) -> Estimate:
    from attnstudy.analysis.aggregate import bootstrap_ci

    seconds = np.array([t.seconds for t in sample])
    low, high = bootstrap_ci(seconds, seed=seed)
    to_hours = points / 3600
    return Estimate(points, sample, seconds.mean() * to_hours, (low * to_hours, high * to_hours))


def write_sample(path: Path, sample: list[Timed], code: dict[str, str]) -> None:
    """One CSV row per sampled trial: its grid key and config (columns named as the study's
    MLflow params), then what it measured and the code it ran (`provenance_tags()`)."""
    rows = [
        {
            "grid_key": t.point.key,
            **t.point.config.to_dict(),
            "solvable": t.point.solvable,
            "status": "diverged" if math.isnan(t.id_seq_acc) else "ok",
            "seconds": round(t.seconds, 2),
            STEPS_TRAINED: t.steps,
            ID_SEQ_ACC: t.id_seq_acc,
            ID_SEQ_ACC_AT_MAX: t.id_seq_acc_at_max,
            STEPS_TO_95: t.steps_to_95,
            "git_commit": code[GIT_COMMIT],
            "git_dirty": code[GIT_DIRTY],
        }
        for t in sample
    ]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def estimate_study(
    spec: StudySpec,
    n: int,
    seed: int,
    workers: int,
    out: TextIO,
    threads: int | None = None,
    csv_path: Path | None = None,
) -> Estimate:
    """Time `n` sampled points, `workers` at a time with the threads each worker would get,
    print a line for each as it ends, then the projection; write the sample to `csv_path`
    when given."""
    from attnstudy.provenance import provenance_tags
    from attnstudy.study import default_threads

    code = provenance_tags()  # the code the sample trains, read before it starts
    threads = threads or default_threads(workers)
    points = spec.points()
    chosen = sample_points(points, n, seed)
    print(f"study {spec.name}: timing {len(chosen)} of {len(points)} grid points", file=out)

    def print_line(t: Timed) -> None:
        accuracy = f"id {t.id_seq_acc:.2f}  at L {t.id_seq_acc_at_max:.2f}"
        line = f"  {t.seconds:6.1f} s  {t.steps:5d} steps  {accuracy}  {t.point.key}"
        print(line, file=out, flush=True)

    sample = time_points(chosen, workers, threads, print_line)
    found = project(len(points), sample, seed)
    print(summary_lines(found, workers, threads), file=out)
    if csv_path is not None:
        write_sample(csv_path, sample, code)
        print(f"sample written to {csv_path}", file=out)
    return found


def summary_lines(e: Estimate, workers: int, threads: int) -> str:
    solvable = [t for t in e.sample if t.point.solvable]
    reached = sum(t.competent for t in solvable)
    unsolvable = len(e.sample) - len(solvable)
    left_out = f" ({unsolvable} sampled unsolvable by construction left out)" * bool(unsolvable)
    low, high = e.hours_ci
    return (
        f"mean {e.hours * 3600 / e.points:.1f} s a trial ({threads} torch thread(s), "
        f"tracking not included)\n"
        f"whole grid: {e.hours:.1f} h for one worker (95% interval {low:.1f}-{high:.1f} h), "
        f"{e.hours / workers:.1f} h with {workers} workers if they scale linearly\n"
        f"{reached} of {len(solvable)} sampled trials reach >= {COMPETENT:.0%} exact match at "
        "the longest training length" + left_out
    )
