"""Section 8: trials per hour at the standard regime (issue 28) — one trial as a study
runs it (tracked to a fresh MLflow store, artifacts included) in the loop as it was
(padded batches, validation by greedy decoding) and in today's (packed rows, validation in
one teacher-forced pass per length), in the same run; and where each trial's time goes.

The regime is the replicate-kazemnejad one, where models extrapolate: a causal decoder,
d_model 64, 2 layers, 4 heads, RoPE, copy, training lengths 1–20, tested to 40, at a fixed
step count (never stopped early)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from attnstudy import schema
from attnstudy.archs import Arch
from attnstudy.bench.overheads import artifact_seconds, data_seconds, tracked_trial
from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import TINY, Plan
from attnstudy.config import Config
from attnstudy.evaluate import VALIDATION_SEED, evaluate, evaluation_seed, summarize
from attnstudy.registries import make_config
from attnstudy.tasks import Task
from attnstudy.train import Validator, validate_in_distribution, validation_samples

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


def trial_rows(plan: Plan) -> list[Row]:
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "warm-up").mkdir()  # first imports and first calls of every op
        breakdown(make_config(**QUICK), Path(tmp) / "warm-up", greedy_validation)
        for i, (loop, (batching, validator)) in enumerate(LOOPS.items()):
            root = Path(tmp) / str(i)
            root.mkdir()
            found[loop] = breakdown(standard_config(plan, batching), root, validator)
    cfg = standard_config(plan, "padded")
    what = (
        f"{cfg.position}, d{cfg.d_model} L{cfg.n_layers} H{cfg.heads}, lengths "
        f"{cfg.train_min_len}-{cfg.train_max_len}, {cfg.steps} steps"
    )
    per_hour = {b: 3600 / wall for b, (wall, _) in found.items()}
    rows = [
        row(SECTION, f"{BASELINE}: {what}", per_hour[BASELINE], "trials/h"),
        row(
            SECTION,
            f"{NEW} vs {BASELINE}: {what}",
            per_hour[NEW],
            "trials/h",
            per_hour[BASELINE],
            (">=", 1.8),
            note="one trial each, tracked to MLflow with its artifacts, as a study runs it",
        ),
    ]
    for loop, (wall, parts) in found.items():
        rows += [
            row(SECTION, f"{part}, {loop} ({wall:.1f} s a trial)", seconds, "s", wall)
            for part, seconds in parts.items()
        ]
    return rows
