"""One typed, validated configuration for a training run.

The config is validated once, at the edge (CLI, study YAML); the core receives a frozen
`Config` and never re-checks names. Registries are consulted here only for their keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value: says what was wrong, where, and what is allowed."""


@dataclass(frozen=True)
class Config:
    # what to learn
    task: str = "copy"
    train_min_len: int = 1
    train_max_len: int = 16
    eval_max_len: int = 0  # 0 → 4 × train_max_len
    # the variant (the study's axes)
    arch: str = "decoder"
    score: str = "scaled_dot"
    heads: int = 4
    position: str = "none"
    randomized: bool = False
    max_random_position: int = 0  # 0 → 4 × the longest evaluated sequence
    # model size
    d_model: int = 64
    n_layers: int = 2
    ff_mult: int = 4
    dropout: float = 0.0
    norm: str = "pre"
    relative_clip: int = 0  # Shaw et al.: distances clipped to [-k, k]; 0 → longest trained
    t5_buckets: int = 32
    t5_max_distance: int = 128
    # optimisation
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    # validation (in-distribution only) and evaluation
    val_every: int = 100
    val_samples: int = 256
    patience: int = 0  # validations without improvement before stopping; 0 = never
    stop_at_val_acc: float = 1.0  # stop once in-distribution validation exact match reaches it
    eval_samples: int = 64  # examples per evaluated length
    seed: int = 0
    device: str = "auto"

    @property
    def resolved_eval_max_len(self) -> int:
        return self.eval_max_len or 4 * self.train_max_len

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """A stable short hash of every field (device excluded: it does not change results
        on the same hardware class)."""
        d = {k: v for k, v in self.to_dict().items() if k != "device"}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


FIELD_TYPES: dict[str, type] = {f.name: type(f.default) for f in fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    want = FIELD_TYPES[name]
    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, want) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return want(value)
        except ValueError:
            pass
    raise ConfigError(f"{name}: expected {want.__name__}, got {value!r}")


def make_config(**values: Any) -> Config:
    """Build and validate a Config from loosely typed values (CLI strings, YAML scalars)."""
    unknown = sorted(set(values) - set(FIELD_TYPES))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; allowed: {', '.join(FIELD_TYPES)}")
    cfg = Config(**{k: _coerce(k, v) for k, v in values.items()})
    validate(cfg)
    return cfg


def _choice(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: unknown value {value!r}; allowed: {', '.join(allowed)}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: Config) -> None:
    """Check every field once; raises ConfigError naming the field and what is allowed."""
    from attnstudy.archs import ARCHS
    from attnstudy.positions import POSITIONS
    from attnstudy.scores import SCORES
    from attnstudy.tasks import TASKS

    _choice("task", cfg.task, TASKS)
    _choice("arch", cfg.arch, ARCHS)
    _choice("score", cfg.score, SCORES)
    _choice("position", cfg.position, POSITIONS)
    _choice("norm", cfg.norm, ("pre", "post"))
    _choice("device", cfg.device, ("auto", "cpu", "cuda", "mps"))
    ARCHS[cfg.arch].check_config(cfg)
    POSITIONS[cfg.position].check_config(cfg)
    _check(cfg.d_model > 0, f"d_model: must be positive, got {cfg.d_model}")
    _check(
        cfg.heads > 0 and cfg.d_model % cfg.heads == 0,
        f"heads: must divide d_model={cfg.d_model}; allowed: "
        + ", ".join(str(h) for h in range(1, cfg.d_model + 1) if cfg.d_model % h == 0)
        + f"; got {cfg.heads}",
    )
    _check(cfg.n_layers >= 1, f"n_layers: must be >= 1, got {cfg.n_layers}")
    _check(cfg.train_min_len >= 1, f"train_min_len: must be >= 1, got {cfg.train_min_len}")
    _check(
        cfg.train_max_len >= cfg.train_min_len,
        f"train_max_len: must be >= train_min_len={cfg.train_min_len}, got {cfg.train_max_len}",
    )
    _check(
        cfg.eval_max_len == 0 or cfg.eval_max_len >= cfg.train_max_len,
        f"eval_max_len: must be 0 (= 4 x train_max_len) or >= train_max_len="
        f"{cfg.train_max_len}, got {cfg.eval_max_len}",
    )
    randomizable = [name for name, p in POSITIONS.items() if p.takes_position_ids]
    _check(
        not cfg.randomized or cfg.position in randomizable,
        f"randomized: needs a position encoding that takes position indices "
        f"({', '.join(randomizable)}), got position={cfg.position!r}",
    )
    for name in ("steps", "batch_size", "val_every", "val_samples", "eval_samples"):
        _check(getattr(cfg, name) >= 1, f"{name}: must be >= 1, got {getattr(cfg, name)}")
    for name in ("warmup_steps", "patience", "max_random_position", "seed"):
        _check(getattr(cfg, name) >= 0, f"{name}: must be >= 0, got {getattr(cfg, name)}")
    _check(cfg.lr > 0, f"lr: must be positive, got {cfg.lr}")
    _check(0 <= cfg.dropout < 1, f"dropout: must be in [0, 1), got {cfg.dropout}")
    _check(
        cfg.relative_clip >= 0,
        f"relative_clip: must be 0 (= longest training distance) or >= 1, got {cfg.relative_clip}",
    )
    _check(cfg.t5_buckets >= 2, f"t5_buckets: must be >= 2, got {cfg.t5_buckets}")
