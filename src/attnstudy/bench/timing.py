"""Clocks and machine facts: median wall time of a callable, this machine's fp32 matmul
FLOP/s, and a description of the machine and its load."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from attnstudy.provenance import usable_cores


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of `repeats` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(fn(), seconds it took)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def matmul_flops(n: int, warmup: int, repeats: int) -> float:
    """Measured fp32 FLOP/s of an (n × n) @ (n × n) matmul: 2n³ per call."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_seconds(lambda: a @ b, warmup, repeats)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """What the numbers were measured on, and how busy the machine was."""
    cores = usable_cores()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": "cpu",
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def interleaved_times(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds of each call of each fn, timed in rounds (one call of each per round) so
    that changes in machine load fall on every contender alike: times[name][round]."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median and quartiles of a[r] / b[r] over rounds r: a ratio of times taken under the
    same load."""
    q1, median, q3 = statistics.quantiles([x / y for x, y in zip(a, b, strict=True)], n=4)
    return median, q1, q3
