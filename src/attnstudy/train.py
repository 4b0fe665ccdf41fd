"""Training: AdamW, linear warmup + cosine decay, gradient clipping, in-distribution
validation for model selection and early stopping, then per-length evaluation.

`run(cfg)` knows nothing of Optuna or MLflow; it reports progress through an optional
callback and returns a `TrainResult`. The training data and the randomized position ids
are drawn from two generators, both seeded from the run seed, so a randomized run sees the
same batches as a plain one.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from attnstudy import schema
from attnstudy.archs import Arch, initial_model
from attnstudy.config import Config
from attnstudy.evaluate import (
    TEST_SEED,
    VALIDATION_SEED,
    LengthResult,
    evaluate,
    evaluation_seed,
    position_table,
    summarize,
    validate,
)
from attnstudy.measure import Maps, attention_statistics, long_example_attention
from attnstudy.tasks import LENGTH_SAMPLERS, Batch, Task, build_task

Callback = Callable[[int, dict[str, float]], None]
Validator = Callable[[Arch, Task, Config, torch.device], dict[str, float]]
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
    attention: Maps = field(default_factory=dict)  # of one example of the longest length
    attention_inputs: torch.Tensor | None = None  # that example's input tokens


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices of linear layers and score parameters, never on
    embeddings, position tables, norms or biases (so untrained position rows stay as
    initialised). The multi-tensor update (foreach) is PyTorch's default on GPUs only; on the
    CPU it takes 5% off a step of quick's model, with the same numbers."""
    decay, no_decay = [], []
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for name, p in model.named_parameters():
        is_table = id(p) in embeddings or "encoding" in name
        (decay if p.dim() >= 2 and not is_table else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)


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


def validation_samples(cfg: Config) -> dict[int, int]:
    """Examples per length that validation draws: cfg.val_samples spread over the training
    lengths only (never longer ones), at least one each."""
    lengths = range(cfg.train_min_len, cfg.train_max_len + 1)
    return dict.fromkeys(lengths, max(1, math.ceil(cfg.val_samples / len(lengths))))


def validate_in_distribution(model: Arch, task: Task, cfg: Config, device) -> dict[str, float]:
    """Exact match on fresh examples of the training lengths (`validation_samples`)."""
    seed = evaluation_seed(VALIDATION_SEED, cfg.seed)
    return validate(model, task, validation_samples(cfg), seed, device)


@dataclass
class Selection:
    """Model selection and early stopping on in-distribution validation exact match only:
    the first checkpoint with the best validation, validations since it improved
    (`stale`), and the first step count that reached 0.95."""

    val_seq_acc: float = -1.0
    step: int = 0
    state: dict | None = None
    stale: int = 0
    steps_to_95: float = math.nan

    def update(self, model: Arch, val_seq_acc: float, steps_done: int) -> None:
        if val_seq_acc >= 0.95 and math.isnan(self.steps_to_95):
            self.steps_to_95 = steps_done
        if val_seq_acc > self.val_seq_acc:
            self.val_seq_acc, self.step = val_seq_acc, steps_done
            self.state, self.stale = copy.deepcopy(model.state_dict()), 0
        else:
            self.stale += 1

    def should_stop(self, val_seq_acc: float, cfg: Config) -> bool:
        """Validation reached cfg.stop_at_val_acc, or `patience` validations passed
        without improvement."""
        patience_spent = cfg.patience > 0 and self.stale >= cfg.patience
        return val_seq_acc >= cfg.stop_at_val_acc or patience_spent


@dataclass
class Training:
    """What the training loop leaves for the final evaluation."""

    history: list[dict]
    selection: Selection
    step_seconds: float  # summed over the optimizer steps, data sampling excluded
    activation_mb: float
    validation_seconds: float = 0.0  # summed over the validations


def train_step(model: Arch, optimizer, batch, positions: torch.Generator, step: int, cfg: Config):
    """One AdamW step on `batch` at lr_at(step), gradients clipped; returns the step's
    record. Raises Diverged if the loss is not finite."""
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
    return {
        "step": step,
        schema.TRAIN_LOSS: loss.item(),
        schema.LR: lr,
        schema.GRAD_NORM: grad_norm,
    }


def training_batches(task: Task, cfg: Config, device) -> Iterator[Batch]:
    """cfg's training stream: batches of the training lengths, drawn as cfg.batching says
    from a generator seeded by cfg.seed."""
    draw_lengths = LENGTH_SAMPLERS[cfg.batching]
    gen = torch.Generator().manual_seed(cfg.seed)
    while True:
        lengths = draw_lengths(cfg.train_min_len, cfg.train_max_len, cfg.batch_size, gen)
        yield task.sample(lengths, gen).to(device)


def position_generator(cfg: Config) -> torch.Generator:
    """The stream position ids are drawn from (randomized positions), apart from the data's."""
    return torch.Generator().manual_seed(cfg.seed + POSITION_SEED_OFFSET)


def train(
    model: Arch,
    task: Task,
    cfg: Config,
    device,
    callback: Callback | None,
    validator: Validator = validate_in_distribution,
) -> Training:
    """The training loop: cfg.steps batches of the training lengths (drawn as cfg.batching
    says), validated every `val_every` steps and at the last, stopped early by the
    Selection's rule."""
    optimizer = make_optimizer(model, cfg)
    positions = position_generator(cfg)
    training = Training([], Selection(), 0.0, math.nan)
    batches = itertools.islice(training_batches(task, cfg, device), cfg.steps)
    for step, batch in enumerate(batches):
        if step == 0:  # measured with a generator of its own: training draws stay the same
            measuring = torch.Generator().manual_seed(cfg.seed)
            training.activation_mb = activation_mb(model, batch, measuring)
        t0 = time.perf_counter()
        record = train_step(model, optimizer, batch, positions, step, cfg)
        training.step_seconds += time.perf_counter() - t0
        validated = (step + 1) % cfg.val_every == 0 or step == cfg.steps - 1
        if validated:
            t0 = time.perf_counter()
            record |= validator(model, task, cfg, device)
            training.validation_seconds += time.perf_counter() - t0
            training.selection.update(model, record[schema.VAL_SEQ_ACC], step + 1)
        training.history.append(record)
        if callback is not None:
            callback(step, record)
        if validated and training.selection.should_stop(record[schema.VAL_SEQ_ACC], cfg):
            break
    return training


def final_evaluation(
    model: Arch, task: Task, cfg: Config, device, training: Training
) -> TrainResult:
    """The selected checkpoint evaluated at every length 1..eval_max_len, on the test
    examples of cfg's seed."""
    model.load_state_dict(training.selection.state)
    samples = {n: cfg.eval_samples_at(n) for n in range(1, cfg.eval_max_len + 1)}
    start = time.perf_counter()
    per_length = evaluate(model, task, samples, evaluation_seed(TEST_SEED, cfg.seed), device)
    summary = summarize(per_length, cfg.train_max_len) | {
        schema.BEST_STEP: training.selection.step,
        schema.STEPS_TRAINED: len(training.history),
        schema.STEPS_TO_95: training.selection.steps_to_95,
        schema.N_PARAMS: count_parameters(model),
        schema.STEP_TIME_MS: 1000 * training.step_seconds / len(training.history),
        schema.ACTIVATION_MB: training.activation_mb,
        schema.VALIDATION_SECONDS: training.validation_seconds,
        schema.EVALUATION_SECONDS: time.perf_counter() - start,
    }
    table = position_table(per_length, cfg.train_max_len)
    return TrainResult(cfg, model, task, device, summary, per_length, table, training.history)


def run(
    cfg: Config, callback: Callback | None = None, validator: Validator = validate_in_distribution
) -> TrainResult:
    """Train cfg's model, select the checkpoint with the best in-distribution validation
    exact match, and evaluate it at every length 1..eval_max_len."""
    device = resolve_device(cfg.device)
    task = build_task(cfg.task, cfg.eval_max_len)
    model = initial_model(cfg, task, device)
    training = train(model, task, cfg, device, callback, validator)
    return measured(final_evaluation(model, task, cfg, device, training))


def measured(result: TrainResult) -> TrainResult:
    """The result with its attention measured (measure.py): the maps of one example of the
    longest training length, and their statistics added to the summary, on examples of the
    seed's test stream."""
    cfg, model, task, device = result.config, result.model, result.task, result.device
    start, seed = time.perf_counter(), evaluation_seed(TEST_SEED, cfg.seed)
    maps, inputs = long_example_attention(model, task, cfg.train_max_len, seed, device)
    result.summary |= attention_statistics(model, maps, cfg, task, seed, device)
    result.summary[schema.MEASUREMENT_SECONDS] = time.perf_counter() - start
    result.attention, result.attention_inputs = maps, inputs
    return result
