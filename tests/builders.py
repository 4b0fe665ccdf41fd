"""What the tests build again and again, defined once: the tiny model configs (keyword
arguments of `make_config`), the tiny study file, and the helpers that write a study file
and name its stores. Constants and functions only: importing this module starts, writes and
trains nothing (the suite runs under pytest-xdist)."""

import yaml

from attnstudy.stores import make_stores
from attnstudy.study_config import load_study

# A tiny model that every architecture, score and encoding builds from in milliseconds. A
# test that needs another size or length derives it with `TINY_MODEL | dict(...)` at the
# place of use and says why.
TINY_MODEL = dict(d_model=16, heads=2, n_layers=2, train_max_len=6)

# A tiny model that trains in seconds on a CPU: one layer, trained on lengths 1 to 4 and
# evaluated up to 8, validated every 10 of its 30 steps.
TINY_TRAINING = TINY_MODEL | dict(
    n_layers=1,
    train_max_len=4,
    eval_max_len=8,
    steps=30,
    val_every=10,
    val_samples=16,
    eval_samples=8,
    warmup_steps=5,
)

# A model that learns copy in distribution in a few hundred steps on a CPU: the schedule the
# tests that check learning share (each adds its architecture, encoding, size and lengths).
LEARNS_COPY = dict(task="copy", d_model=32, steps=400, batch_size=32, val_every=50, eval_samples=32)

# TINY_MODEL trained long enough that some examples pass and some fail, at lengths inside and
# beyond training (its lengths | its schedule | its samples).
PARTLY_TRAINED = (
    TINY_MODEL
    | dict(eval_max_len=12, steps=150, val_every=50, warmup_steps=10, lr=5e-3, batch_size=32)
    | dict(val_samples=24, eval_samples=4, device="cpu")
)

# The tiny study file (written by `study_file`): four grid points on copy, each trained for
# 20 steps.
TINY_STUDY = {
    "name": "tiny",
    "tasks": ["copy"],
    "fixed": {
        "d_model": 16,
        "n_layers": 1,
        "train_max_len": 3,
        "eval_max_len": 5,
        "steps": 20,
        "val_every": 10,
        "val_samples": 8,
        "eval_samples": 4,
        "warmup_steps": 0,
    },
    "axes": {"score": ["dot", "scaled_dot"], "position": ["none", "learned"], "heads": [2]},
}

# The axes of a study of one grid point (a variant of TINY_STUDY).
ONE_POINT_AXES = {"score": ["dot"], "position": ["none"], "heads": [2]}

# A study of three blocks with the tiny study's fixed settings: four grid points, one of them
# shared by two blocks.
BLOCKS = {
    "name": "blocks",
    "fixed": TINY_STUDY["fixed"],
    "blocks": {
        "scores": {"tasks": ["copy"], "axes": {"score": ["dot", "scaled_dot"]}},
        "positions": {
            "tasks": ["copy"],
            "fixed": {"score": "dot"},
            "axes": {"position": ["none", "learned"]},
        },
        "nope_encoder": {
            "tasks": ["copy"],
            "fixed": {"arch": "encoder"},
            "axes": {"score": ["cosine"]},
            "solvable": False,
        },
    },
}


def study_file(tmp_path, study: dict):
    path = tmp_path / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))  # blocks in the order given
    return load_study(path)


def stores_in(tmp_path):
    runs = tmp_path / "runs"
    return make_stores(runs, tracking_uri=f"sqlite:///{runs}/mlflow.db")
