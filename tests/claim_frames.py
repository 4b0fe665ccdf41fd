"""Hand-built frames for the claim tests: for every claim, data whose per-seed primary
effect is what the test asks for, so each of the four verdicts can be built on purpose."""

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from frames import make_runs

from attnstudy.analysis.claims import CLAIMS
from attnstudy.analysis.rules import Frames
from attnstudy.analysis.variants import LONG_RANGE_TASKS
from attnstudy.analysis.verdicts import decide, evaluate_claims
from attnstudy.schema import (
    ATTN_ALIGNMENT,
    ATTN_ALIGNMENT_INIT,
    ATTN_ALIGNMENT_UNIFORM,
    ATTN_SHARPNESS,
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    NEAR_OOD_SEQ_ACC,
    STEP_TIME_MS,
    STEPS_TO_95,
)

NO_LENGTHS = pd.DataFrame(columns=["run_id", "length", "seq_acc", "train_max_len"])
NO_POSITIONS = pd.DataFrame(
    columns=["run_id", "task", "split", "length", "target_pos", "token_acc"]
)
Frames3 = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


def runs_only(runs: pd.DataFrame) -> Frames3:
    return runs, NO_LENGTHS, NO_POSITIONS


def paired_runs(metric: str, a: dict, b: dict, effects: Sequence[float], base: float) -> Frames3:
    """Runs ``a`` (side A) and ``b`` (side B) for seed s = 0, 1, …: B at ``base``, A at
    ``base + effects[s]``."""
    rows = [
        row
        for s, e in enumerate(effects)
        for row in ({**a, "seed": s, metric: base + e}, {**b, "seed": s, metric: base})
    ]
    return runs_only(make_runs(*rows))


def with_lengths(runs: pd.DataFrame, acc: pd.Series) -> Frames3:
    """``runs`` with a per-length frame: exact match ``acc`` (one per run) at every length
    of the longer half of training, 1.0 below it."""
    rows = [
        {"run_id": r.run_id, "length": n, "train_max_len": r.train_max_len}
        | {"seq_acc": value if n > r.train_max_len / 2 else 1.0}
        for r, value in zip(runs.itertuples(), acc, strict=True)
        for n in range(1, r.train_max_len + 1)
    ]
    return runs.drop(columns=ID_SEQ_ACC_AT_MAX), pd.DataFrame(rows), NO_POSITIONS


def c1(effects: Sequence[float]) -> Frames3:
    """rnn (A) and rnn-attention (B) on copy, the RNN short of its longest training length;
    within each length, token accuracy on the first quarter of the input is 0.6 (+ the
    effect for the RNN), 1.0 on the last quarter."""
    rows = [
        {"arch": arch, "seed": s, ID_SEQ_ACC_AT_MAX: 0.5 if arch == "rnn" else 1.0}
        for s in range(len(effects))
        for arch in ("rnn", "rnn-attention")
    ]
    runs = make_runs(*rows).assign(train_max_len=8)
    early = {
        (r.run_id): 0.6 + (effects[r.seed] if r.arch == "rnn" else 0.0) for r in runs.itertuples()
    }
    positions = pd.DataFrame(
        [
            {"run_id": run, "task": "copy", "split": "id", "length": n, "target_pos": i}
            | {"token_acc": early[run] if (i + 0.5) / n <= 0.25 else 1.0}
            for run in runs["run_id"]
            for n in range(4, 9)
            for i in range(n)
        ]
    )
    return runs, NO_LENGTHS, positions


def c2(effects: Sequence[float]) -> Frames3:
    runs = make_runs(
        *[{"arch": a, "seed": s} for s in range(len(effects)) for a in ("rnn-attention", "rnn")]
    )
    acc = [0.5 + (effects[r.seed] if r.arch == "rnn-attention" else 0.0) for r in runs.itertuples()]
    return with_lengths(runs.assign(train_max_len=8), pd.Series(acc))


def c3(effects: Sequence[float]) -> Frames3:
    rows = [
        {"seed": s, ATTN_ALIGNMENT: 0.3 + e, ATTN_ALIGNMENT_INIT: 0.3}
        | {ATTN_ALIGNMENT_UNIFORM: 0.1, ATTN_SHARPNESS: 0.9}
        for s, e in enumerate(effects)
    ]
    return runs_only(make_runs(*rows))


def c4(effects: Sequence[float]) -> Frames3:
    """Every score form at 0.95 + the effect."""
    forms = ("dot", "cosine", "general", "additive")
    rows = [
        {"score": f, "seed": s, ID_SEQ_ACC: 0.95 + e} for s, e in enumerate(effects) for f in forms
    ]
    return runs_only(make_runs(*rows))


def c5(effects: Sequence[float]) -> Frames3:
    runs = make_runs(*[{"heads": h, "seed": s} for s in range(len(effects)) for h in (4, 1)])
    acc = [0.5 + (effects[r.seed] if r.heads == 4 else 0.0) for r in runs.itertuples()]
    return with_lengths(runs, pd.Series(acc))


def c6(effects: Sequence[float]) -> Frames3:
    """Causal decoder: none (A) against sinusoidal and learned (B)."""
    rows = [
        {"arch": "decoder", "position": p, "seed": s}
        | {ID_SEQ_ACC: 0.5 + (e if p == "none" else 0.0)}
        for s, e in enumerate(effects)
        for p in ("none", "sinusoidal", "learned")
    ]
    return runs_only(make_runs(*rows))


def c7(effects: Sequence[float]) -> Frames3:
    return paired_runs(
        NEAR_OOD_SEQ_ACC, {"position": "sinusoidal"}, {"position": "learned"}, effects, 0.3
    )


def c8(effects: Sequence[float]) -> Frames3:
    """learned (A) reaches 0.95 later than sinusoidal (B) where the effect is positive,
    earlier where negative, at the same step where zero."""
    rows = [
        row
        for s, e in enumerate(effects)
        for row in (
            {
                "position": "learned",
                "seed": s,
                STEPS_TO_95: 500.0 + 300 * math.copysign(1, e) * (abs(e) > 0.01),
            },
            {"position": "sinusoidal", "seed": s, STEPS_TO_95: 500.0},
        )
    ]
    return runs_only(make_runs(*rows))


def c9(effects: Sequence[float]) -> Frames3:
    learned, t5 = {"position": "learned"}, {"position": "t5"}
    return paired_runs(NEAR_OOD_SEQ_ACC, learned, t5, effects, 0.3)


def c10(effects: Sequence[float]) -> Frames3:
    task = {"task": LONG_RANGE_TASKS[0]}
    return paired_runs(
        NEAR_OOD_SEQ_ACC, task | {"position": "t5"}, task | {"position": "learned"}, effects, 0.3
    )


def c11(effects: Sequence[float]) -> Frames3:
    return paired_runs(
        NEAR_OOD_SEQ_ACC, {"position": "alibi"}, {"position": "sinusoidal"}, effects, 0.3
    )


def c12(effects: Sequence[float]) -> Frames3:
    """t5 (A) slower than learned (B) by a factor e^effect."""
    rows = [
        row
        for s, e in enumerate(effects)
        for row in (
            {"position": "t5", "seed": s, STEP_TIME_MS: 10.0 * math.exp(e)},
            {"position": "learned", "seed": s, STEP_TIME_MS: 10.0},
        )
    ]
    return runs_only(make_runs(*rows))


BUILDERS: dict[str, Callable[[Sequence[float]], Frames3]] = {
    "C1": c1,
    "C2": c2,
    "C3": c3,
    "C4": c4,
    "C5": c5,
    "C6": c6,
    "C7": c7,
    "C8": c8,
    "C9": c9,
    "C10": c10,
    "C11": c11,
    "C12": c12,
}


# --- the claim tests' shared steps ---------------------------------------------------------

PRESETS = Path(__file__).parents[1] / "study"
ENOUGH, TOO_FEW = 6, 3  # seeds: 2/2^6 < 0.05 can reject alone; 2/2^3 cannot


def verdict(claim: str, runs: pd.DataFrame, lengths=NO_LENGTHS, positions=NO_POSITIONS):
    """The verdict of one claim, Holm-corrected over the claims these frames test."""
    return next(v for v in evaluate_claims(runs, lengths, positions) if v.claim == claim)


def check(claim: str, runs: pd.DataFrame, lengths=NO_LENGTHS, positions=NO_POSITIONS):
    """The verdict of ``claim`` decided on its own (a Holm family of one), and its finding."""
    c = CLAIMS[claim]
    finding = c.check(Frames.of(runs, lengths, positions))
    return decide(finding.effect, finding.effect.p, c.sign, c.smallest_effect), finding


def effects(size: float, seeds: int, spread: float = 0.001, alternate: bool = False):
    """Per-seed effects ``size`` + a small spread by seed (alternating in sign if asked)."""
    return [size + spread * s * ((-1) ** s if alternate else 1) for s in range(seeds)]


def built(claim: str, size: float, seeds: int, alternate: bool = False):
    return BUILDERS[claim](effects(size, seeds, alternate=alternate))
