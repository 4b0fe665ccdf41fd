"""Sections 1–3: training step time (forward, backward, gradient clipping, AdamW) of every
score × position of our decoder against `torch.nn` and x-transformers, and model FLOP
utilisation. All contenders of one shape are timed in interleaved rounds."""

from __future__ import annotations

import importlib.util
import itertools
import statistics
from collections.abc import Callable

import torch
from torch import nn

from attnstudy.archs import build_model
from attnstudy.bench.references import (
    XT_POSITIONS,
    XT_SCORES,
    TorchReference,
    language_model_loss,
    random_tokens,
    x_transformers_model,
    xt_note,
    xt_supports,
)
from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import Plan, Shape
from attnstudy.bench.timing import interleaved_times, paired_ratio
from attnstudy.config import ConfigError
from attnstudy.positions import POSITIONS
from attnstudy.scores import SCORES
from attnstudy.tasks import build_task
from attnstudy.train import make_optimizer

TORCH, XT, MFU = (
    "1. training step vs torch.nn",
    "2. training step vs x-transformers",
    "3. model FLOP utilisation",
)
TORCH_REF = "torch.nn.TransformerEncoderLayer"
Step = Callable[[], float]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn) -> Step:
    """One optimisation step as train.run takes it: loss, backward, clip, AdamW."""

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    return step


def our_step(shape: Shape, score: str, position: str) -> Step | None:
    """Our decoder's step on a batch of copy examples of length train_max_len (None where
    the variant cannot run at this shape)."""
    try:
        cfg = shape.config(score=score, position=position)
    except ConfigError:
        return None
    task = build_task(cfg.task, cfg.eval_max_len)
    model = build_model(cfg, task)
    gen = torch.Generator().manual_seed(0)
    batch = task.sample(torch.full((shape.batch_size,), shape.train_max_len), gen)
    return train_step(model, make_optimizer(model, cfg), lambda: model.loss(batch, gen))


def reference_step(model: nn.Module, shape: Shape, vocab: int) -> Step:
    tokens = random_tokens(shape, vocab, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    return train_step(model, optimizer, lambda: language_model_loss(model, tokens))


def contenders(shape: Shape, vocab: int) -> dict[str, Step]:
    """Every step to time at one shape, keyed 'ours/score/position', 'torch',
    'xt/score/position/flash|math'."""
    steps: dict[str, Step] = {"torch": reference_step(TorchReference(shape, vocab), shape, vocab)}
    for score, position in itertools.product(SCORES, POSITIONS):
        step = our_step(shape, score, position)
        if step is not None:
            steps[f"ours/{score}/{position}"] = step
    if importlib.util.find_spec("x_transformers") is None:
        return steps
    for score, position, flash in itertools.product(XT_SCORES, XT_POSITIONS, (True, False)):
        if xt_supports(score, position, flash):
            model = x_transformers_model(shape, vocab, score, position, flash)
            kind = "flash" if flash else "math"
            steps[f"xt/{score}/{position}/{kind}"] = reference_step(model, shape, vocab)
    return steps


def analytic_flops(shape: Shape, vocab: int) -> float:
    """FLOPs of one training step (Kaplan et al. 2020; Chowdhery et al. 2022, app. B):
    6 × matmul parameters × tokens, plus 12 × layers × d × T per token for the attention
    products (q·k and weights·v, forward and backward, the full T × T square)."""
    d, L, T = shape.d_model, shape.n_layers, shape.seq_len
    tokens = shape.batch_size * T
    params = L * 12 * d * d + d * vocab  # 4d² attention + 8d² feed-forward per layer; head
    return 6 * params * tokens + 12 * L * d * T * tokens


def step_rows(shape: Shape, repeats: int, plan: Plan, peak_flops: float) -> list[Row]:
    """Rows of sections 1–3 for one shape."""
    vocab = build_task("copy", 4 * shape.train_max_len).vocab_size
    times = interleaved_times(contenders(shape, vocab), plan.warmup, repeats)
    label = {"shape": shape.name, "dims": shape.label()}
    return (
        torch_rows(times, label)
        + xt_rows(times, label)
        + mfu_rows(times, label, analytic_flops(shape, vocab), peak_flops)
    )


def ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def compare(
    section: str, what: str, ours: list[float], ref: list[float], goal, note: str, **params
) -> Row:
    """Median ms/step of ours and of the reference; the ratio is the median of per-round
    ratios (each round times both under the same load), its quartiles in the note."""
    ratio, q1, q3 = paired_ratio(ours, ref)
    spread = f"per-round ratio quartiles {q1:.3f}-{q3:.3f}"
    note = "; ".join(n for n in (spread, note) if n)
    return row(section, what, ms(ours), "ms/step", ms(ref), goal, ratio, note, **params)


def torch_rows(times: dict[str, list[float]], label: dict) -> list[Row]:
    rows = []
    for key in (k for k in times if k.startswith("ours/")):
        _, score, position = key.split("/")
        main = (score, position) == ("scaled_dot", "none")
        what = f"{score} + {position} @ {label['shape']} ({label['dims']})"
        goal, note = (("<=", 1.10), f"reference: {TORCH_REF}") if main else (None, "")
        rows.append(
            compare(
                TORCH,
                what,
                times[key],
                times["torch"],
                goal,
                note,
                score=score,
                position=position,
                **label,
            )
        )
    return rows


def xt_rows(times: dict[str, list[float]], label: dict) -> list[Row]:
    if not any(k.startswith("xt/") for k in times):
        missing = "x-transformers is not installed: pip install -e '.[bench]'"
        return [row(XT, f"@ {label['shape']}", float("nan"), "ms/step", note=missing)]
    rows = []
    for score, position in itertools.product(XT_SCORES, XT_POSITIONS):
        prefix = f"xt/{score}/{position}/"
        kinds = {k.removeprefix(prefix): t for k, t in times.items() if k.startswith(prefix)}
        ours = times.get(f"ours/{score}/{position}")
        if not kinds or ours is None:
            continue
        kind = min(kinds, key=lambda k: statistics.median(kinds[k]))
        note = "; ".join(
            n for n in (f"x-transformers' faster kernel: {kind}", xt_note(score, position)) if n
        )
        what = f"{score} + {position} @ {label['shape']} ({label['dims']})"
        rows.append(
            compare(
                XT,
                what,
                ours,
                kinds[kind],
                ("<=", 1.0),
                note,
                score=score,
                position=position,
                **label,
            )
        )
    return rows


def mfu_rows(times: dict[str, list[float]], label: dict, flops: float, peak: float) -> list[Row]:
    rows = []
    for name, key in (
        ("ours scaled_dot + none", "ours/scaled_dot/none"),
        (TORCH_REF, "torch"),
        ("x-transformers (none, flash)", "xt/scaled_dot/none/flash"),
    ):
        if key not in times:
            continue
        achieved = flops / statistics.median(times[key]) / 1e9
        rows.append(
            row(
                MFU,
                f"{name} @ {label['shape']} ({label['dims']})",
                achieved,
                "GFLOP/s",
                peak / 1e9,
                note=f"{flops / 1e9:.3g} GFLOP per step (analytic); reference: fp32 matmul peak",
                **label,
            )
        )
    return rows
