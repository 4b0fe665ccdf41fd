"""`attnstudy bench`: speed and memory of our models against references, side by side in
one process (issue 7). Each section is one module returning table rows:

1–3. training.py   — step time vs torch.nn and x-transformers; model FLOP utilisation
4.   decoding.py   — greedy decoding with and without the key-value cache
5.   memory.py     — peak forward memory of each score function and encoding
6.   throughput.py — study trials per hour with 1 and 2 workers
7.   overheads.py  — data generation and MLflow tracking inside a trial
8.   trials.py     — trials per hour at the standard regime: packed rows and teacher-forced
                    validation vs the loop as it was (padded, greedy validation)

`run_bench` returns the rows and a description of the machine; report.py writes them.
"""

from __future__ import annotations

import os
import sys
import time

import torch

from attnstudy.bench import decoding, memory, overheads, throughput, trials
from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import Plan, make_plan
from attnstudy.bench.timing import machine, matmul_flops
from attnstudy.bench.training import MFU, TORCH, step_rows


def peak_row(plan: Plan) -> tuple[Row, float]:
    n = 256 if plan.quick else 2048
    flops = matmul_flops(n, plan.warmup, 5)
    return row(MFU, f"fp32 matmul {n} x {n} (this machine's peak)", flops / 1e9, "GFLOP/s"), flops


def sections(plan: Plan, flops: float):
    """(section title, function returning its rows) in table order."""
    for shape, repeats in zip(plan.shapes, plan.repeats, strict=True):
        yield (
            f"{TORCH} ({shape.label()})",
            lambda s=shape, n=repeats: step_rows(s, n, plan, flops),
        )
    yield decoding.SECTION, lambda: decoding.decoding_rows(plan)
    yield memory.SECTION, lambda: memory.memory_rows(plan)
    yield throughput.SECTION, lambda: throughput.throughput_rows(plan)
    yield overheads.SECTION, lambda: overheads.overhead_rows(plan)
    yield trials.SECTION, lambda: trials.trial_rows(plan)


def run_section(title: str, section) -> tuple[list[Row], float]:
    """The section's rows and seconds; a section that fails becomes one row saying why, so
    one broken part does not lose the others' measurements."""
    progress(title)
    start = time.perf_counter()
    try:
        rows = section()
    except Exception as err:
        rows = [row(title, "section failed", float("nan"), "", note=f"{type(err).__name__}: {err}")]
    return rows, time.perf_counter() - start


def progress(name: str) -> None:
    print(f"bench: {name} …", file=sys.stderr, flush=True)


def run_bench(quick: bool, threads: int) -> tuple[list[Row], dict]:
    """Every section; rows sorted by section (stable), and the run's metadata."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    plan = make_plan(quick)
    meta = {"quick": quick, "threads": threads, "load_before": round(os.getloadavg()[0], 2)}
    start = time.perf_counter()
    progress("fp32 matmul peak")
    peak, flops = peak_row(plan)
    rows, seconds = [peak], {}
    for title, section in sections(plan, flops):
        new, seconds[title] = run_section(title, section)
        rows += new
    meta |= {
        "machine": machine(),
        "load_after": round(os.getloadavg()[0], 2),
        "seconds": time.perf_counter() - start,
        "section_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "shapes": [s.label() for s in plan.shapes],
    }
    return sorted(rows, key=lambda r: r.section), meta
