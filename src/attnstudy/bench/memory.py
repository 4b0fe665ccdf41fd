"""Section 5: peak memory of each score function's forward pass at the longest evaluation
length, against `scaled_dot` (no positions), and of each positional encoding's (with
`scaled_dot`), against no positions; with the memory a training step saves for backward.

Peak memory is measured by the PyTorch profiler's allocation events
(`profile_memory=True`): every CPU tensor allocation and free is recorded with the
allocator's running total of live bytes, so the peak is exact and independent of the
process's other memory (unlike RSS). It counts tensor storage only, not Python objects."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from attnstudy.archs import build_model
from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import Plan
from attnstudy.config import ConfigError
from attnstudy.positions import POSITIONS
from attnstudy.scores import SCORES
from attnstudy.tasks import build_task
from attnstudy.train import activation_mb

SECTION = "5. peak memory"
BASELINE = ("scaled_dot", "none")
GOAL_SCORES = ("additive", "general")


def peak_bytes(fn) -> int:
    """Largest number of bytes of tensor storage fn allocated beyond what was live when it
    started (from the profiler's allocation events)."""
    from torch._C._profiler import _EventType

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, node.extra_fields))
        stack.extend(node.children)
    if not events:
        return 0
    events.sort(key=lambda e: e[0])
    start = events[0][1].total_allocated - events[0][1].alloc_size
    return max(e.total_allocated for _, e in events) - start


def variant_memory(plan: Plan, score: str, position: str) -> tuple[float, float] | None:
    """(peak MiB of an eval forward at the longest evaluation length, MiB saved for
    backward by a training step at the training length) for one variant; None where it
    cannot run at this shape."""
    shape = plan.study_shape
    try:
        cfg = shape.config(score=score, position=position)
    except ConfigError:
        return None
    task = build_task(cfg.task, cfg.eval_max_len)
    model = build_model(cfg, task).eval()
    gen = torch.Generator().manual_seed(0)
    samples = 8 if plan.quick else cfg.eval_samples
    longest = task.sample(torch.full((samples,), cfg.eval_max_len), gen)
    with torch.no_grad():
        peak = peak_bytes(lambda: model.loss(longest, gen)) / 2**20
    train_batch = task.sample(torch.full((shape.batch_size,), shape.train_max_len), gen)
    return peak, activation_mb(model.train(), train_batch, gen)


def variants(baseline: tuple[str, str]) -> list[tuple[str, str]]:
    """Every score without positions, then every encoding with the baseline's score."""
    score, position = baseline
    return [(s, position) for s in SCORES] + [(score, p) for p in POSITIONS if p != position]


def memory_rows(plan: Plan) -> list[Row]:
    shape = plan.study_shape
    cfg = shape.config()
    measured = {v: variant_memory(plan, *v) for v in variants(BASELINE)}
    samples = 8 if plan.quick else cfg.eval_samples
    n = cfg.eval_max_len
    forward = f"eval forward, length {n} ({2 * n + 1} tokens) x {samples}"
    training = f"saved for backward, training step at length {shape.train_max_len}"
    base_peak, base_saved = measured[BASELINE]
    rows = []
    for (score, position), found in measured.items():
        if found is None:
            continue
        peak, saved = found
        goal = ("<=", 2.0) if score in GOAL_SCORES else None
        name = score if position == BASELINE[1] else f"{score} + {position}"
        labels = dict(score=score, position=position)
        rows.append(row(SECTION, f"{name}: {forward}", peak, "MiB", base_peak, goal, **labels))
        rows.append(row(SECTION, f"{name}: {training}", saved, "MiB", base_saved, **labels))
    return rows
