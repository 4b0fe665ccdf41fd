"""A tidy `runs` row (config and metric columns) for hand-built test frames, and frames
built from it."""

import pandas as pd

from attnstudy.schema import (
    ATTN_ALIGNMENT,
    ATTN_ALIGNMENT_INIT,
    ATTN_ALIGNMENT_UNIFORM,
    ATTN_SHARPNESS,
    EXTRAPOLATION_LEN,
    HEAD_DIVERSITY,
    HEAD_DIVERSITY_INIT,
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    ID_TOKEN_ACC,
    N_PARAMS,
    NEAR_OOD_SEQ_ACC,
    OOD_SEQ_ACC,
    OOD_TOKEN_ACC,
    PEAK_MEM_MB,
    STEP_TIME_MS,
    STEPS_TO_95,
    STEPS_TRAINED,
)

BASE_RUN = {
    "status": "ok",
    "task": "copy",
    "arch": "decoder",
    "score": "scaled_dot",
    "position": "rope",
    "randomized": False,
    "heads": 4,
    "d_model": 64,
    "n_layers": 2,
    "lr": 1e-3,
    "seed": 0,
    "train_max_len": 20,
    "eval_max_len": 80,
    ID_SEQ_ACC: 1.0,
    ID_SEQ_ACC_AT_MAX: 1.0,
    ID_TOKEN_ACC: 1.0,
    OOD_SEQ_ACC: 0.0,
    NEAR_OOD_SEQ_ACC: 0.0,
    OOD_TOKEN_ACC: 0.5,
    EXTRAPOLATION_LEN: 20,
    N_PARAMS: 1000,
    STEP_TIME_MS: 10.0,
    PEAK_MEM_MB: 100.0,
    STEPS_TO_95: 500.0,
    STEPS_TRAINED: 1000,
    ATTN_SHARPNESS: float("nan"),
    ATTN_ALIGNMENT: float("nan"),
    ATTN_ALIGNMENT_UNIFORM: float("nan"),
    HEAD_DIVERSITY: float("nan"),
    HEAD_DIVERSITY_INIT: float("nan"),
    ATTN_ALIGNMENT_INIT: float("nan"),
}


def make_runs(*rows: dict) -> pd.DataFrame:
    """A runs frame of BASE_RUN rows with ``rows``' changes, run ids r0, r1, …"""
    return pd.DataFrame([{**BASE_RUN, "run_id": f"r{i}", **row} for i, row in enumerate(rows)])


def level_runs(column: str, level: str, values: list[float], metric: str = OOD_SEQ_ACC):
    """Rows of one level of ``column``: seed s with ``metric`` values[s]."""
    return [{column: level, "seed": s, metric: v} for s, v in enumerate(values)]


def modern_runs() -> pd.DataFrame:
    """Decoder runs on copy at 2 heads (softmax with none, rope, fire; sigmoid with rope),
    2 seeds each; classic runs at 1 head (another setting) and an RNN baseline. The mean
    over every longer length ranks the variants the other way round from exact match up
    to 2L (near_ood_seq_acc)."""
    variants = [("scaled_dot", "none"), ("scaled_dot", "rope"), ("scaled_dot", "fire")]
    variants += [("sigmoid", "rope")]
    rows = [
        BASE_RUN
        | {"run_id": f"{s}-{p}-{seed}", "score": s, "position": p, "heads": 2, "seed": seed}
        | {NEAR_OOD_SEQ_ACC: 0.1 * (i + 1) + 0.1 * seed, OOD_SEQ_ACC: 0.05 * (4 - i)}
        for i, (s, p) in enumerate(variants)
        for seed in (0, 1)
    ]
    rows += [BASE_RUN | {"run_id": "h1", "heads": 1, NEAR_OOD_SEQ_ACC: 0.9}]
    rows += [BASE_RUN | {"run_id": "rnn", "arch": "rnn", "position": "none", "heads": 2}]
    return pd.DataFrame(rows)
