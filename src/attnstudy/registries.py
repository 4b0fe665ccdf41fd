"""The registries of the study's axes, keyed by the Config field each fills, and the
validation of a Config against them: the edge where variant names are checked.

config.py knows the fields and their ranges but no variant (it imports no model code);
this module adds what only the registries know: the names, each architecture's and
encoding's own rules (`check_config`) and which encodings can be randomized
(`PositionalEncoding.takes_position_ids`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from attnstudy.archs import ARCHS
from attnstudy.config import Config, ConfigError, check_choice, coerce_config, validate_fields
from attnstudy.positions import POSITIONS, ShawRelativePositions
from attnstudy.schema import (
    ENCODING_FAMILY,
    ENCODING_MODERN,
    LONG_RANGE,
    SCORE_MODERN,
    SHIFT_INVARIANT,
    USES_ATTENTION,
    USES_POSITIONS,
)
from attnstudy.scores import SCORES
from attnstudy.tasks import TASKS

REGISTRIES = {"task": TASKS, "arch": ARCHS, "score": SCORES, "position": POSITIONS}
VARIANT_SETS = {  # a name a study axis may list for every registered variant it selects
    "every": lambda cls: True,
    "every classic": lambda cls: not getattr(cls, "modern", False),
    "every modern": lambda cls: getattr(cls, "modern", False),
}


def expand_variant_sets(field: str, values: list) -> list:
    """`values` of a study axis with each variant set name (VARIANT_SETS) replaced by the
    names of the registered variants it selects, in registry order; a variant a set adds
    twice, or that is also listed, appears once, where first named."""
    registry = REGISTRIES.get(field, {})
    expanded = []
    for value in values:
        selects = VARIANT_SETS.get(value) if registry else None
        names = [n for n, cls in registry.items() if selects(cls)] if selects else [value]
        expanded += [n for n in names if n not in expanded]
    return expanded


def make_config(**values: Any) -> Config:
    """Build and validate a Config from loosely typed values (CLI strings, YAML scalars),
    its defaults resolved (`resolve_defaults`)."""
    cfg = coerce_config(**values)
    validate(cfg)
    return resolve_defaults(cfg)


def resolve_defaults(cfg: Config) -> Config:
    """cfg with each field whose 0 stands for a default (config.ZERO_MEANS; patience's 0
    is a value) set to the value it stands for, exactly as the model derived it before
    make_config did: the Config, and what MLflow logs of it, holds the numbers that run.

    relative_clip keeps 0 where no one number stands for its default: where the model's
    Transformers train on different numbers of positions, each clips at its own longest
    distance (an encoder-decoder on a task whose input and target lengths differ, e.g.
    duplicate: encoder 4, decoder 8 at train_max_len 4; randomized, both train on the
    whole random range), and an architecture without positions has none."""
    random_range = cfg.max_random_position or 4 * _longest_sequence(cfg)
    trained = {random_range} if cfg.randomized else set(_fed_positions(cfg))
    clip = ShawRelativePositions.default_clip(*trained) if len(trained) == 1 else 0
    return dataclasses.replace(
        cfg,
        eval_max_len=_eval_max_len(cfg),
        max_random_position=random_range,
        relative_clip=cfg.relative_clip or clip,
        eval_samples_far=cfg.eval_samples_far or cfg.eval_samples,
    )


def _eval_max_len(cfg: Config) -> int:
    return cfg.eval_max_len or 4 * cfg.train_max_len


def _longest_sequence(cfg: Config) -> int:
    """The longest sequence the architecture evaluates (`Arch.seq_len` at eval_max_len)."""
    n = _eval_max_len(cfg)
    return ARCHS[cfg.arch].seq_len(TASKS[cfg.task](n), n)


def _fed_positions(cfg: Config) -> tuple[int, ...]:
    """How many positions a training example of the longest length feeds each of the
    architecture's Transformers (none without positions)."""
    arch, n = ARCHS[cfg.arch], cfg.train_max_len
    return arch.fed_positions(TASKS[cfg.task](n), n) if arch.uses_positions else ()


def declared_facts(task: str, arch: str, position: str, score: str) -> dict[str, str | bool]:
    """What the registered classes of a variant declare (``schema.VARIANT_FACTS``). A name
    no registry holds declares nothing: family "unknown", not shift-invariant, long-range
    or length-aware, and an architecture that takes positions and attention (a
    Transformer)."""
    task_cls, arch_cls = TASKS.get(task), ARCHS.get(arch)
    encoding, score_cls = POSITIONS.get(position), SCORES.get(score)
    return {
        ENCODING_FAMILY: getattr(encoding, "family", "unknown"),
        SHIFT_INVARIANT: encoding is not None and bool(encoding.shift_invariant(score_cls)),
        ENCODING_MODERN: bool(getattr(encoding, "modern", False)),
        SCORE_MODERN: bool(getattr(score_cls, "modern", False)),
        USES_POSITIONS: bool(getattr(arch_cls, "uses_positions", True)),
        USES_ATTENTION: bool(getattr(arch_cls, "uses_attention", True)),
        LONG_RANGE: bool(getattr(task_cls, "long_range", False)),
    }


def validate(cfg: Config) -> None:
    """Check every field once; raises ConfigError naming the first broken rule, what was
    wrong and what is allowed. Rules come in the order a user would fix them: names and
    the device, each number's own range (in field order), rules between fields, then the
    architecture's and the encoding's own rules."""
    for name, registry in REGISTRIES.items():
        check_choice(name, getattr(cfg, name), registry)
    validate_fields(cfg)
    _check_variant(cfg)


def not_applicable(values: dict[str, Any], axes: dict[str, tuple]) -> str | None:
    """Why a grid point's settings combine variants that their classes rule out, or None
    (also for settings `make_config` rejects otherwise: it reports those).

    A study grid skips such points instead of failing on them: an encoding (or randomized
    positions) for an architecture that takes no positions, randomized positions for an
    encoding that takes no position ids, and, for an architecture without attention, any
    score or head count but the axis's first value (which stands for all)."""
    try:
        cfg = coerce_config(**values)
    except ConfigError:
        return None
    arch, position = ARCHS.get(cfg.arch), POSITIONS.get(cfg.position)
    if arch is None or position is None:
        return None
    if not arch.uses_positions and (cfg.position != "none" or cfg.randomized):
        return f"arch={cfg.arch} takes no positional encoding"
    if cfg.randomized and not position.takes_position_ids:
        return f"position={cfg.position} takes no position ids to randomize"
    for axis in ("score", "heads"):
        if not arch.uses_attention and axis in axes and getattr(cfg, axis) != axes[axis][0]:
            return f"arch={cfg.arch} has no attention: {axis}={axes[axis][0]} stands for all"
    return None


def unsolvable(cfg: Config) -> str | None:
    """Why cfg cannot solve its task by construction, from the variants' class facts, or None."""
    if POSITIONS[cfg.position].family != "none":
        return None
    reason = ARCHS[cfg.arch].unsolvable_without_positions(TASKS[cfg.task])
    return reason and f"arch={cfg.arch} without positions: {reason}"


def _check_variant(cfg: Config) -> None:
    """The architecture's and the encoding's own rules, then randomized positions."""
    ARCHS[cfg.arch].check_config(cfg)
    POSITIONS[cfg.position].check_config(cfg)
    randomizable = [name for name, p in POSITIONS.items() if p.takes_position_ids]
    if cfg.randomized and cfg.position not in randomizable:
        raise ConfigError(
            f"randomized: needs a position encoding that takes position indices "
            f"({', '.join(randomizable)}), got position={cfg.position!r}"
        )
    if cfg.randomized and cfg.max_random_position:
        longest, n = _longest_sequence(cfg), _eval_max_len(cfg)
        if cfg.max_random_position < longest:
            raise ConfigError(
                f"max_random_position: must be 0 (= 4 x the longest sequence) or >= the "
                f"longest sequence, {longest} (arch={cfg.arch}, task={cfg.task}, length {n}), "
                f"got {cfg.max_random_position}"
            )
