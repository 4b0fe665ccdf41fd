"""Section 8: trials per hour at the standard regime (issue 28) — trials as a study runs
them (tracked to a fresh MLflow store, artifacts included) in the loop as it was (padded
batches, validation by greedy decoding) and in today's (packed rows, validation in one
teacher-forced pass per length), in the same run; where each trial's time goes; and the
training step of every batching timed in interleaved rounds.

The trials run in the order A B B A (A B for --quick): one trial each swung the ratio from
1.29 to 1.64 on unchanged code, as the machine's speed drifted between the two; in that
order a linear drift falls on both loops alike.

The regime is the replicate-kazemnejad one, where models extrapolate: a causal decoder,
d_model 64, 2 layers, 4 heads, RoPE, copy, training lengths 1–20, tested to 40, at a fixed
step count (never stopped early)."""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from attnstudy import schema
from attnstudy.archs import Arch, build_model
from attnstudy.bench.overheads import artifact_seconds, data_seconds, tracked_trial
from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import TINY, Plan
from attnstudy.bench.timing import interleaved_times
from attnstudy.bench.training import compare
from attnstudy.config import Config
from attnstudy.evaluate import VALIDATION_SEED, evaluate, evaluation_seed, summarize
from attnstudy.registries import make_config
from attnstudy.tasks import Task, build_task
from attnstudy.train import (
    Validator,
    make_optimizer,
    position_generator,
    train_step,
    training_batches,
    validate_in_distribution,
    validation_samples,
)

SECTION = "8. trials per hour at the standard regime"
STANDARD = dict(
    task="copy",
    arch="decoder",
    position="rope",
    d_model=64,
    n_layers=2,
    heads=4,
    train_min_len=1,
    train_max_len=20,
    eval_max_len=40,
    batch_size=64,
    lr=1e-3,
    warmup_steps=100,
    steps=2000,
    val_every=250,
    val_samples=128,
    eval_samples=256,
    stop_at_val_acc=2.0,  # never reached: every trial trains its steps
    device="cpu",
)
QUICK = STANDARD | TINY | dict(eval_max_len=8, steps=10, val_every=5, eval_samples=4)


def greedy_validation(model: Arch, task: Task, cfg: Config, device) -> dict[str, float]:
    """Validation as it was before the teacher-forced pass: greedy decoding of the same
    examples, the same exact match (tests/test_validation.py), one decoding step per token."""
    seed = evaluation_seed(VALIDATION_SEED, cfg.seed)
    results = evaluate(model, task, validation_samples(cfg), seed, device)
    s = summarize(results, cfg.train_max_len)
    return {
        schema.VAL_SEQ_ACC: s[schema.ID_SEQ_ACC],
        schema.VAL_NEXT_TOKEN_ACC: math.nan,
    }  # not computed


LOOPS: dict[str, tuple[str, Validator]] = {  # name: (batching, validation)
    "padded, greedy validation": ("padded", greedy_validation),
    "packed, teacher-forced validation": ("packed", validate_in_distribution),
}
BASELINE, NEW = LOOPS


def standard_config(plan: Plan, batching: str) -> Config:
    return make_config(**(QUICK if plan.quick else STANDARD), batching=batching)


def breakdown(cfg: Config, root: Path, validator: Validator) -> tuple[float, dict[str, float]]:
    """One tracked trial: its wall seconds and the seconds of each part of it. `other` is
    what no part accounts for (building the model, keeping the best checkpoint, …)."""
    wall, tracking, result = tracked_trial(cfg, root, validator)
    artifacts = artifact_seconds(result, root / "again")
    s, steps = result.summary, len(result.history)
    parts = {
        "training steps": s[schema.STEP_TIME_MS] * steps / 1000,
        "training data": data_seconds(cfg, steps),
        "validation": s[schema.VALIDATION_SECONDS],
        "final evaluation": s[schema.EVALUATION_SECONDS],
        "attention measurement": s[schema.MEASUREMENT_SECONDS],
        "MLflow logging": tracking - artifacts,
        "artifacts": artifacts,
    }
    return wall, parts | {"other": wall - sum(parts.values())}


def trial_order(rounds: int) -> list[str]:
    """The loops in the order their trials run: A B, then B A, and so on."""
    pair = [BASELINE, NEW]
    return [loop for r in range(rounds) for loop in (pair if r % 2 == 0 else pair[::-1])]


def mean_parts(runs: list[tuple[float, dict[str, float]]]) -> tuple[float, dict[str, float]]:
    """Mean wall and mean seconds of each part over a loop's trials."""
    walls = [wall for wall, _ in runs]
    parts = {part: statistics.mean(p[part] for _, p in runs) for part in runs[0][1]}
    return statistics.mean(walls), parts


def run_trials(plan: Plan) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """Per loop, the (wall, parts) of each of its trials, run in `trial_order`."""
    runs: dict[str, list[tuple[float, dict[str, float]]]] = {loop: [] for loop in LOOPS}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "warm-up").mkdir()  # first imports and first calls of every op
        breakdown(make_config(**QUICK), Path(tmp) / "warm-up", greedy_validation)
        for i, loop in enumerate(trial_order(plan.trial_rounds)):
            batching, validator = LOOPS[loop]
            root = Path(tmp) / str(i)
            root.mkdir()
            runs[loop].append(breakdown(standard_config(plan, batching), root, validator))
    return runs


def trial_rows(plan: Plan) -> list[Row]:
    runs = run_trials(plan)
    cfg = standard_config(plan, "padded")
    what = (
        f"{cfg.position}, d{cfg.d_model} L{cfg.n_layers} H{cfg.heads}, lengths "
        f"{cfg.train_min_len}-{cfg.train_max_len}, {cfg.steps} steps"
    )
    found = {loop: mean_parts(r) for loop, r in runs.items()}
    per_hour = {loop: 3600 / wall for loop, (wall, _) in found.items()}
    round_ratios = ", ".join(
        f"{a / b:.2f}"
        for (a, _), (b, _) in zip(runs[BASELINE], runs[NEW], strict=True)  # walls
    )
    order = " ".join("A" if loop == BASELINE else "B" for loop in trial_order(plan.trial_rounds))
    rows = [
        row(SECTION, f"{BASELINE}: {what}", per_hour[BASELINE], "trials/h"),
        row(
            SECTION,
            f"{NEW} vs {BASELINE}: {what}",
            per_hour[NEW],
            "trials/h",
            per_hour[BASELINE],
            (">=", 1.8),
            note=(
                f"trials run {order} (A the loop as it was, B today's), each tracked to "
                f"MLflow with its artifacts as a study runs it; ratio of each A, B pair: "
                f"{round_ratios}"
            ),
        ),
    ]
    for loop, (wall, parts) in found.items():
        rows += [
            row(SECTION, f"{part}, {loop} ({wall:.1f} s a trial)", seconds, "s", wall)
            for part, seconds in parts.items()
        ]
    return rows + step_rows(plan)


STEP_BATCHINGS = {  # batching: what its row says
    "padded": "padded batches (the loop as it was)",
    "packed": "packed rows (today's loop)",
    "by_length": (
        "one length per step, no padding: the most that removing padding can give "
        "(presets do not train this way: it lost competence, docs/calibration.md)"
    ),
}


def step_rows(plan: Plan) -> list[Row]:
    """Training step (forward, backward, clipping, AdamW) at the standard regime in each
    batching, timed in interleaved rounds on batches drawn as that batching draws them."""
    steps = {}
    for batching in STEP_BATCHINGS:
        cfg = standard_config(plan, batching)
        task = build_task(cfg.task, cfg.eval_max_len)
        model = build_model(cfg, task)
        steps[batching] = training_step(model, task, cfg)
    rounds = 2 * plan.repeats[0]
    times = interleaved_times(steps, plan.warmup, rounds)
    return [
        compare(
            SECTION,
            f"training step, {label} vs padded",
            times[batching],
            times["padded"],
            None,
            f"{rounds} interleaved rounds, one step each",
            batching=batching,
        )
        for batching, label in STEP_BATCHINGS.items()
        if batching != "padded"
    ]


def training_step(model: Arch, task: Task, cfg: Config) -> Callable[[], object]:
    """One call: one train_step on the next batch of cfg's training stream."""
    optimizer, positions = make_optimizer(model, cfg), position_generator(cfg)
    batches, count = training_batches(task, cfg, "cpu"), itertools.count()
    return lambda: train_step(model, optimizer, next(batches), positions, next(count), cfg)
