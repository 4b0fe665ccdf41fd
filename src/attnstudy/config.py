"""One typed configuration for a training run: its fields, their types and ranges.

The config is validated once, at the edge (CLI, study YAML), by `registries.make_config`:
the variant names against the registries there, every other rule here. There too each
field whose 0 stands for a default (ZERO_MEANS: what an input of 0 means) gets the value
it stands for, so a built Config, and what MLflow logs of it, holds concrete numbers
(relative_clip's one exception is in `registries.resolve_defaults`). This module imports
no model code, so anything may import it. The core receives a frozen `Config` and never
re-checks it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
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
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    batching: str = "padded"  # how a step's lengths are drawn: one of BATCHINGS
    # validation (in-distribution only) and evaluation
    val_every: int = 100
    val_samples: int = 256
    patience: int = 0  # validations without improvement before stopping; 0 = never
    stop_at_val_acc: float = 1.0  # stop once in-distribution validation exact match reaches it
    eval_samples: int = 256  # examples per evaluated length up to 2 x train_max_len
    eval_samples_far: int = 0  # examples per length beyond 2 x train_max_len; 0 → eval_samples
    seed: int = 0
    device: str = "auto"

    def eval_samples_at(self, length: int) -> int:
        """Examples evaluated at `length`: eval_samples on the lengths the primary metrics
        read (1..2 x train_max_len), eval_samples_far beyond."""
        near = length <= 2 * self.train_max_len
        return self.eval_samples if near else self.eval_samples_far

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """A stable short hash of every field (device excluded: it does not change results
        on the same hardware class)."""
        d = {k: v for k, v in self.to_dict().items() if k != "device"}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


ZERO_MEANS = {  # what an input of 0 stands for: make_config resolves each but patience's
    "eval_max_len": "4 x train_max_len",
    "max_random_position": "4 x the longest evaluated sequence",
    "relative_clip": "the longest distance in a training sequence",
    "patience": "never stop early for lack of improvement",
    "eval_samples_far": "eval_samples",
}

BATCHINGS = {  # `batching`: how the examples of one training step get their lengths
    "padded": "each example its own length, padded to the batch's longest",
    "by_length": "one length per step, drawn as `padded` draws one example's (no padding)",
    "packed": "the examples of `padded`, laid end to end in rows, attention kept within each "
    "example: the same loss, less padding computed (decoder and encoder)",
}

FIELD_TYPES: dict[str, type] = {f.name: type(f.default) for f in fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    want = FIELD_TYPES[name]
    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
        ):
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


def coerce_config(**values: Any) -> Config:
    """A Config from loosely typed values (CLI strings, YAML scalars), each coerced to its
    field's type; not yet validated (see `registries.make_config`)."""
    unknown = sorted(set(values) - set(FIELD_TYPES))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; allowed: {', '.join(FIELD_TYPES)}")
    return Config(**{k: _coerce(k, v) for k, v in values.items()})


def check_choice(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: unknown value {value!r}; allowed: {', '.join(allowed)}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def available_devices() -> tuple[str, ...]:
    """The `device` values this machine can run: auto and cpu, then cuda and mps if present."""
    import torch

    found = (
        ("cuda", torch.cuda.is_available()),
        ("mps", torch.backends.mps.is_available()),
    )
    return ("auto", "cpu", *(name for name, present in found if present))


# (field, least, most); `least` may name the field that bounds it. The most is far beyond
# any length-generalisation run on one machine: past it a run only exhausts memory or
# overflows torch's 64-bit integers.
RANGES: tuple[tuple[str, int | str, int], ...] = (
    ("train_min_len", 1, 2**12),
    ("train_max_len", "train_min_len", 2**12),
    ("eval_max_len", 0, 2**14),
    ("heads", 1, 2**10),
    ("max_random_position", 0, 2**24),
    ("d_model", 1, 2**14),
    ("n_layers", 1, 2**10),
    ("ff_mult", 1, 2**6),
    ("relative_clip", 0, 2**24),  # 0 → default: max_random_position - 1 if randomized
    ("t5_buckets", 4, 2**14),
    ("t5_max_distance", 1, 2**24),
    ("steps", 1, 2**40),
    ("batch_size", 1, 2**16),
    ("warmup_steps", 0, 2**40),
    ("val_every", 1, 2**40),
    ("val_samples", 1, 2**16),
    ("patience", 0, 2**40),
    ("eval_samples", 1, 2**16),
    ("eval_samples_far", 0, 2**16),
    ("seed", 0, 2**63 - 1),
)


def validate_fields(cfg: Config) -> None:
    """Check every field but the variant names, which only their registries know (see
    `registries.validate`, which calls this after them): the norm and the device, each
    number's own range (in field order), then the rules between fields. Raises ConfigError
    naming the first broken rule, what was wrong and what is allowed."""
    check_choice("norm", cfg.norm, ("pre", "post"))
    check_choice("batching", cfg.batching, BATCHINGS)
    check_choice("device", cfg.device, ("auto", "cpu", "cuda", "mps"))
    available = available_devices()
    _check(
        cfg.device in available,
        f"device: {cfg.device!r} is not available on this machine; available: "
        + ", ".join(available),
    )
    _check_ranges(cfg)
    _check_between_fields(cfg)


def _check_ranges(cfg: Config) -> None:
    for name, least, most in RANGES:
        value, named = getattr(cfg, name), isinstance(least, str)
        bound = getattr(cfg, least) if named else least
        low = f"{least}={bound}" if named else bound
        _check(value >= bound, f"{name}: must be >= {low}, got {value}")
        _check(value <= most, f"{name}: must be <= {most}, got {value}")
    for name in ("dropout", "lr", "weight_decay", "grad_clip", "stop_at_val_acc"):
        _check(not math.isnan(getattr(cfg, name)), f"{name}: must be a number, got nan")
    _check(0 <= cfg.dropout < 1, f"dropout: must be in [0, 1), got {cfg.dropout}")
    _check(0 < cfg.lr < math.inf, f"lr: must be positive and finite, got {cfg.lr}")
    _check(
        0 <= cfg.weight_decay < math.inf,
        f"weight_decay: must be >= 0 and finite, got {cfg.weight_decay}",
    )
    _check(
        cfg.grad_clip > 0,
        f"grad_clip: must be positive (inf: no clipping), got {cfg.grad_clip}",
    )


def _check_between_fields(cfg: Config) -> None:
    _check(
        cfg.eval_max_len == 0 or cfg.eval_max_len >= cfg.train_max_len,
        f"eval_max_len: must be 0 (= 4 x train_max_len) or >= train_max_len="
        f"{cfg.train_max_len}, got {cfg.eval_max_len}",
    )
    _check(
        cfg.d_model % cfg.heads == 0,
        f"heads: must divide d_model={cfg.d_model}; allowed: "
        + ", ".join(map(str, _divisors(cfg.d_model)))
        + f"; got {cfg.heads}",
    )
    _check(
        cfg.t5_max_distance > cfg.t5_buckets // 2,
        f"t5_max_distance: must be > t5_buckets/2 = {cfg.t5_buckets // 2} (shorter distances "
        f"get exact buckets), got {cfg.t5_max_distance}",
    )


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})
