"""Study definitions (`study/*.yaml`): a typed schema, validated once when loaded.

A study is a union of grids, its blocks. A block is the product of its axes (lists of
`Config` values, tasks included) on top of fixed settings, minus explicit exclusions and
minus the points the variants' own class facts rule out (`registries.not_applicable`: an
encoding for an RNN, randomized positions for an encoding without position ids, a second
score or head count for an architecture without attention). Every
grid point becomes one validated `Config`; any bad key or value is reported on one line
with the file, the key (`blocks.NAME.axes.heads: …` inside a block) and what is allowed.

Two forms of file:
- single grid: top-level `tasks`, `fixed`, `axes`, `exclude`; one unnamed block;
- blocks: a top-level `fixed` shared by every block, and `blocks:` mapping each block's name
  to its own `description`, `tasks`, `fixed` (overrides the shared settings), `axes` (may
  vary a shared setting), `exclude` and `solvable` (false: the block's points cannot solve
  their task by construction, e.g. an encoder without positions on copy; they are recorded
  as such for the analysis). A block left solvable may not hold a point that the variants'
  class facts say cannot solve its task (`registries.unsolvable`): it would count as a
  training failure in every competence rate.

A variant axis (task, arch, score, position) may list a variant set, `every`, `every classic`
or `every modern` (`registries.VARIANT_SETS`), beside names: it stands for the registered
variants it selects, so a new registered class joins the presets that list its set.

Grid keys: `axis=value,…` over the block's sorted axis names; in a file with blocks,
prefixed with the block's name, `NAME/axis=value,…`. A single-grid file thus keeps the keys
(and fingerprint) it always had, and keys stay unique across blocks (a block's keys are
unique within it) and stable while a block keeps its name and axes.

Duplicates: points of different blocks with the same settings (the same `config_hash`)
are one point, run once. It keeps the key and params of the first block that declares it,
in file order, and lists every block that declares it in `blocks`. Blocks that share a
point must agree on whether it is solvable.

Order: block by block in file order, each block's points in the order of Optuna's
`GridSampler` seeded with the study's `sampler_seed`, so every process that loads the same
file sees the same grid.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from attnstudy.config import FIELD_TYPES, Config, ConfigError, _coerce, coerce_config
from attnstudy.registries import (
    expand_variant_sets,
    make_config,
    not_applicable,
    unsolvable,
)
from attnstudy.tasks import TASKS

GRID = ("tasks", "axes", "exclude")  # a single-grid file's grid; a block's otherwise
TOP_LEVEL = ("name", "description", "tasks", "fixed", "axes", "exclude", "sampler_seed", "blocks")
BLOCK_KEYS = ("description", "tasks", "fixed", "axes", "exclude", "solvable")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
Scalar = str | int | float | bool
Rule = dict[str, tuple[Scalar, ...]]  # axis → the values an exclusion matches


@dataclass(frozen=True)
class GridPoint:
    key: str  # "axis=value,…" over the sorted axis names, "BLOCK/…" in a file with blocks
    params: dict[str, Scalar]  # the axis values, typed as in Config
    config: Config  # its defaults resolved (`registries.make_config`)
    # The hash of its settings as given (`coerce_config`, defaults unresolved): trials and
    # runs carry it, resume and dedup match by it. As before make_config resolved defaults
    # (issue 31), so stores started before resume unchanged.
    config_hash: str
    blocks: tuple[str, ...] = ()  # the blocks that declare it, in file order (none: one grid)
    solvable: bool = True  # False: cannot solve its task by construction


@dataclass(frozen=True)
class Block:
    """One grid of a study."""

    name: str  # "" for the one grid of a file without blocks
    description: str
    fixed: dict[str, Scalar]  # the shared settings updated with the block's own, minus axes
    own: tuple[str, ...]  # the settings of `fixed` the block sets itself
    axes: dict[str, tuple[Scalar, ...]]  # "task" first, then the file's axes
    exclude: tuple[Rule, ...]
    solvable: bool = True

    @property
    def where(self) -> str:
        """Prefix of the block's keys in error messages."""
        return f"blocks.{self.name}." if self.name else ""

    def points(self, seed: int, fail) -> list[GridPoint]:
        """The block's grid in GridSampler order, without excluded points."""
        points, ruled_out = [], []
        order = grid_order(self.axes, seed)
        for params in order:
            if any(all(params[k] in v for k, v in rule.items()) for rule in self.exclude):
                continue
            reason = not_applicable(self.fixed | params, self.axes)
            if reason is not None:  # the variants' own facts exclude it
                ruled_out.append(reason)
                continue
            try:
                config = make_config(**self.fixed, **params)
            except ConfigError as err:
                raise fail(f"{self.locate(str(err))} (grid point {grid_key(params)})") from None
            if config.eval_max_len <= config.train_max_len:
                raise fail(
                    f"{self.key_of('eval_max_len')}: must exceed train_max_len (the study "
                    f"measures length generalisation), got {config.eval_max_len}"
                )
            key = f"{self.name}/{grid_key(params)}" if self.name else grid_key(params)
            reason = unsolvable(config)
            if self.solvable and reason:
                raise fail(
                    f"{self.where}solvable: grid point {key} cannot solve its task by "
                    f"construction ({reason}); exclude it, or put it in a block declared "
                    "solvable: false"
                )
            names = (self.name,) if self.name else ()
            settings = coerce_config(**self.fixed, **params).hash()
            points.append(GridPoint(key, params, config, settings, names, self.solvable))
        if not points:
            facts = f" and the variants' facts ({ruled_out[0]})" if ruled_out else ""
            raise fail(
                f"{self.where}exclude: the exclusions{facts} remove all {len(order)} grid "
                "points; at least one must remain"
            )
        return points

    def key_of(self, field: str) -> str | None:
        """The study key that sets a Config field for this block ("axes.heads", …)."""
        if field in self.axes:
            return f"{self.where}axes.{field}"
        if field in self.own:
            return f"{self.where}fixed.{field}"
        return f"fixed.{field}" if field in self.fixed else None

    def locate(self, message: str) -> str:
        """Prefix a Config error with the study key it came from ("axes.heads: …")."""
        field = re.split(r"[:=]", message, maxsplit=1)[0]
        key = self.key_of(field)
        return f"{key}: {message.removeprefix(field + ': ')}" if key else message


@dataclass(frozen=True)
class Grid:
    points: tuple[GridPoint, ...]
    merged: int  # points declared by more than one block, counted once each extra time


@dataclass(frozen=True)
class StudySpec:
    name: str
    description: str
    path: str
    fixed: dict[str, Scalar]  # shared by every block (a single-grid file: its fixed settings)
    blocks: tuple[Block, ...]
    sampler_seed: int

    @property
    def axes(self) -> dict[str, tuple[Scalar, ...]]:
        """Every axis of any block with the union of its values (first seen first)."""
        axes: dict[str, dict[Scalar, None]] = {}
        for block in self.blocks:
            for key, values in block.axes.items():
                axes.setdefault(key, {}).update(dict.fromkeys(values))
        return {k: tuple(v) for k, v in axes.items()}

    @property
    def named_blocks(self) -> bool:
        return bool(self.blocks[0].name)

    @cached_property
    def grid(self) -> Grid:
        """Every block's points, a point shared by several blocks once."""
        found: dict[str, GridPoint] = {}  # config hash → point
        merged = 0
        for block in self.blocks:
            for point in block.points(self.sampler_seed, self.error):
                first = found.get(point.config_hash)
                if first is None:
                    found[point.config_hash] = point
                    continue
                if first.solvable != point.solvable:
                    raise self.error(
                        f"{block.where}solvable: grid point {point.key} is also {first.key}, "
                        f"declared solvable: {str(first.solvable).lower()}; blocks that share "
                        "a point must agree"
                    )
                found[point.config_hash] = dataclasses.replace(
                    first, blocks=first.blocks + point.blocks
                )
                merged += 1
        return Grid(tuple(found.values()), merged)

    def points(self) -> list[GridPoint]:
        """The grid: block by block, each in GridSampler order, without excluded points."""
        return list(self.grid.points)

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {message}")


def grid_key(params: dict[str, Scalar]) -> str:
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


def grid_order(axes: dict[str, tuple[Scalar, ...]], seed: int) -> list[dict[str, Scalar]]:
    """Every combination of the axes, in the order GridSampler(axes, seed) assigns them to
    trials 0, 1, 2, …: a throwaway in-memory study asks the sampler once per point."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {k: list(v) for k, v in axes.items()}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=seed))
    size = 1
    for values in space.values():
        size *= len(values)
    order = []
    for _ in range(size):
        trial = study.ask()
        order.append({k: trial.suggest_categorical(k, v) for k, v in space.items()})
    return order


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study file; raises ConfigError naming the file and the key."""
    path = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None
    spec = _parse(path, raw)
    spec.points()  # validates every grid point
    return spec


def _yaml_problem(err: yaml.YAMLError) -> str:
    """The parser's complaint and where, on one line."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where + (getattr(err, "problem", None) or " ".join(str(err).split()))


def _parse(path: str, raw: Any) -> StudySpec:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{path}: {message}")

    if not isinstance(raw, dict):
        raise fail(f"expected a mapping with keys {', '.join(TOP_LEVEL)}")
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}; allowed: {', '.join(TOP_LEVEL)}")
    if "name" not in raw:
        raise fail("missing key 'name'")
    name = raw["name"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise fail(f"name: expected letters, digits, '_', '.' or '-', got {name!r}")
    seed = raw.get("sampler_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise fail(f"sampler_seed: expected an integer in [0, 2**32), got {seed!r}")
    description = str(raw.get("description", ""))
    if "blocks" not in raw:
        grid = {k: raw[k] for k in (*GRID, "fixed") if k in raw}
        block = _block(fail, "", grid, {})
        return StudySpec(name, description, path, block.fixed, (block,), seed)
    beside = [k for k in GRID if k in raw]
    if beside:
        raise fail(f"{beside[0]}: not allowed beside 'blocks'; each block has its own {beside[0]}")
    shared = _settings(fail, "fixed", raw.get("fixed") or {}, "each block's 'tasks'")
    blocks = _mapping(fail, "blocks", raw["blocks"], "block name: block")
    if not blocks:
        raise fail("blocks: expected at least one block")
    parsed = tuple(_named_block(fail, key, value, shared) for key, value in blocks.items())
    return StudySpec(name, description, path, shared, parsed, seed)


def _named_block(fail, name: Any, raw: Any, shared: dict[str, Scalar]) -> Block:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise fail(f"blocks: block name: expected letters, digits, '_', '.' or '-', got {name!r}")
    where = f"blocks.{name}"
    raw = _mapping(fail, where, raw, "key: value")
    unknown = sorted(set(raw) - set(BLOCK_KEYS))
    if unknown:
        raise fail(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(BLOCK_KEYS)}")
    return _block(fail, name, raw, shared)


def _block(fail, name: str, raw: dict, shared: dict[str, Scalar]) -> Block:
    """One grid (a block, or the single grid of a file without blocks) from its keys."""
    where = f"blocks.{name}." if name else ""
    tasks_key = f"'{where}tasks'" if name else "the top-level key 'tasks'"
    for key in ("tasks", "axes"):
        if key not in raw:
            raise fail(f"blocks.{name}: missing key {key!r}" if name else f"missing key {key!r}")
    tasks = _values(fail, f"{where}tasks", "task", raw["tasks"])
    for task in tasks:
        if task not in TASKS:
            raise fail(f"{where}tasks: unknown task {task!r}; allowed: {', '.join(TASKS)}")
    own = _settings(fail, f"{where}fixed", raw.get("fixed") or {}, tasks_key)
    axes = {"task": tasks}
    for key, values in _mapping(fail, f"{where}axes", raw["axes"]).items():
        _check_field(fail, f"{where}axes", key, tasks_key)
        if key in own:
            raise fail(
                f"{where}axes.{key}: also in {where}fixed; a setting is either fixed or an axis"
            )
        axes[key] = _values(fail, f"{where}axes.{key}", key, values)
    rules = raw.get("exclude") or []
    if not isinstance(rules, list):
        raise fail(f"{where}exclude: expected a list of {{axis: values}} rules, got {rules!r}")
    exclude = tuple(_rule(fail, f"{where}exclude[{i}]", rule, axes) for i, rule in enumerate(rules))
    solvable = raw.get("solvable", True)
    if not isinstance(solvable, bool):
        raise fail(f"{where}solvable: expected true or false, got {solvable!r}")
    fixed = {k: v for k, v in (shared | own).items() if k not in axes}
    description = str(raw.get("description", ""))
    return Block(name, description, fixed, tuple(own), axes, exclude, solvable)


def _mapping(fail, where: str, value: Any, shape: str = "setting: value") -> dict:
    if not isinstance(value, dict):
        raise fail(f"{where}: expected a mapping of {shape}, got {value!r}")
    return value


def _check_field(fail, where: str, key: Any, tasks_key: str) -> None:
    if key == "task":
        raise fail(f"{where}.task: list tasks under {tasks_key}")
    if key not in FIELD_TYPES:
        allowed = ", ".join(k for k in FIELD_TYPES if k != "task")
        raise fail(f"{where}: unknown setting {key!r}; allowed: {allowed}")


def _typed(fail, where: str, field: str, value: Any) -> Scalar:
    if not isinstance(value, Scalar):
        raise fail(f"{where}: expected a single value, got {value!r}")
    try:
        return _coerce(field, value)
    except ConfigError as err:
        raise fail(f"{where}: {str(err).removeprefix(field + ': ')}") from None


def _settings(fail, where: str, raw: Any, tasks_key: str) -> dict[str, Scalar]:
    fixed = {}
    for key, value in _mapping(fail, where, raw).items():
        _check_field(fail, where, key, tasks_key)
        fixed[key] = _typed(fail, f"{where}.{key}", key, value)
    return fixed


def _values(fail, where: str, field: str, raw: Any) -> tuple[Scalar, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail(f"{where}: expected a non-empty list of values, got {raw!r}")
    values = tuple(_typed(fail, where, field, v) for v in raw)
    if len(set(values)) < len(values):
        raise fail(f"{where}: values repeat: {list(values)}")
    return tuple(expand_variant_sets(field, list(values)))


def _rule(fail, where: str, raw: Any, axes: dict) -> Rule:
    """One exclusion: axis → a value or a list of values; a point matching every axis of
    the rule is left out of the grid."""
    rule = {}
    for key, value in _mapping(fail, where, raw, "axis: values").items():
        if key not in axes:
            raise fail(f"{where}: {key!r} is not an axis; axes: {', '.join(axes)}")
        typed = tuple(
            _typed(fail, f"{where}.{key}", key, v)
            for v in (value if isinstance(value, list) else [value])
        )
        for v in typed:
            if v not in axes[key]:
                allowed = ", ".join(map(str, axes[key]))
                raise fail(f"{where}.{key}: {v!r} is not on the axis; allowed: {allowed}")
        rule[key] = typed
    return rule
