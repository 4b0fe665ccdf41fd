"""Training: AdamW, linear warmup + cosine decay, gradient clipping, in-distribution
validation for model selection and early stopping, then per-length evaluation.

`run(cfg)` knows nothing of Optuna or MLflow; it reports progress through an optional
callback and returns a `TrainResult`. The training data and the randomized position ids
are drawn from two generators, both seeded from the run seed, so a randomized run sees the
same batches as a plain one.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from attnstudy.archs import Arch, build_model
from attnstudy.config import Config
from attnstudy.evaluate import (
    TEST_SEED,
    VALIDATION_SEED,
    LengthResult,
    evaluate,
    position_table,
    summarize,
)
from attnstudy.tasks import Task, build_task, sample_lengths

Callback = Callable[[int, dict[str, float]], None]
POSITION_SEED_OFFSET = 4_000_037  # the position generator's seed is the run seed + this


class Diverged(RuntimeError):
    """The training loss stopped being finite: a result of the variant, not a crash."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"diverged at step {step}: loss = {loss}")
        self.step, self.loss = step, loss


@dataclass
class TrainResult:
    config: Config
    model: Arch
    task: Task
    device: torch.device
    summary: dict[str, float]
    per_length: list[LengthResult]
    per_position: list[dict]
    history: list[dict] = field(default_factory=list)


def initial_model(cfg: Config, task: Task, device: torch.device) -> Arch:
    """cfg's model as initialised from its seed, before any training step."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg, task).to(device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices of linear layers and score parameters, never on
    embeddings, position tables, norms or biases (so untrained position rows stay as
    initialised)."""
    decay, no_decay = [], []
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for name, p in model.named_parameters():
        is_table = id(p) in embeddings or "encoding" in name
        (decay if p.dim() >= 2 and not is_table else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_at(step: int, cfg: Config) -> float:
    """Linear warmup to cfg.lr, then cosine decay to 10% of it at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def activation_mb(model: Arch, batch, gen) -> float:
    """Megabytes of tensors saved for backward by one training step: the activation memory,
    measured the same way on every device."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.loss(batch, gen)
    return total / 2**20


def validate_in_distribution(model: Arch, task: Task, cfg: Config, device) -> dict[str, float]:
    """Exact match on fresh examples of the training lengths only (never longer ones)."""
    lengths = range(cfg.train_min_len, cfg.train_max_len + 1)
    per = max(1, math.ceil(cfg.val_samples / len(lengths)))
    results = evaluate(model, task, lengths, per, VALIDATION_SEED, device)
    s = summarize(results, cfg.train_max_len)
    return {"val_seq_acc": s["id_seq_acc"], "val_token_acc": s["id_token_acc"]}


def run(cfg: Config, callback: Callback | None = None) -> TrainResult:
    """Train cfg's model, select the checkpoint with the best in-distribution validation
    exact match, and evaluate it at every length 1..eval_max_len."""
    device = resolve_device(cfg.device)
    task = build_task(cfg.task, cfg.resolved_eval_max_len)
    model = initial_model(cfg, task, device)
    optimizer = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    positions = torch.Generator().manual_seed(cfg.seed + POSITION_SEED_OFFSET)
    history: list[dict] = []
    best = {"val_seq_acc": -1.0, "step": 0, "state": None}
    stale, step_seconds, steps_to_95 = 0, 0.0, float("nan")
    memory_mb = float("nan")
    for step in range(cfg.steps):
        batch = task.sample(
            sample_lengths(cfg.train_min_len, cfg.train_max_len, cfg.batch_size, gen), gen
        ).to(device)
        if step == 0:  # measured with a generator of its own: training draws stay the same
            memory_mb = activation_mb(model, batch, torch.Generator().manual_seed(cfg.seed))
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model.loss(batch, positions)
        if not torch.isfinite(loss):
            raise Diverged(step, loss.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip).item()
        optimizer.step()
        step_seconds += time.perf_counter() - t0
        record = {
            "step": step,
            "train_loss": loss.item(),
            "lr": lr,
            "grad_norm": grad_norm,
        }
        last = step == cfg.steps - 1
        if (step + 1) % cfg.val_every == 0 or last:
            record |= validate_in_distribution(model, task, cfg, device)
            if record["val_seq_acc"] >= 0.95 and math.isnan(steps_to_95):
                steps_to_95 = step + 1
            if record["val_seq_acc"] > best["val_seq_acc"]:
                best = {
                    "val_seq_acc": record["val_seq_acc"],
                    "step": step + 1,
                    "state": copy.deepcopy(model.state_dict()),
                }
                stale = 0
            else:
                stale += 1
        history.append(record)
        if callback is not None:
            callback(step, record)
        if "val_seq_acc" in record and (
            record["val_seq_acc"] >= cfg.stop_at_val_acc or (cfg.patience and stale >= cfg.patience)
        ):
            break
    model.load_state_dict(best["state"])
    per_length = evaluate(
        model, task, range(1, cfg.resolved_eval_max_len + 1), cfg.eval_samples, TEST_SEED, device
    )
    summary = summarize(per_length, cfg.train_max_len) | {
        "best_step": best["step"],
        "steps_trained": len(history),
        "steps_to_95": steps_to_95,
        "n_params": count_parameters(model),
        "step_time_ms": 1000 * step_seconds / len(history),
        "activation_mb": memory_mb,
    }
    return TrainResult(
        cfg,
        model,
        task,
        device,
        summary,
        per_length,
        position_table(per_length, cfg.train_max_len),
        history,
    )
