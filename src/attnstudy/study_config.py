"""Study definitions (`study/*.yaml`): a typed schema, validated once when loaded.

A study is a grid: the product of its axes (lists of `Config` values, tasks included)
on top of fixed settings, minus explicit exclusions. Every grid point becomes one
validated `Config`; any bad key or value is reported with the file, the key and what is
allowed. The points come in the order of Optuna's `GridSampler` seeded with the study's
`sampler_seed`, so every process that loads the same file sees the same grid.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from attnstudy.config import FIELD_TYPES, Config, ConfigError, _coerce, make_config
from attnstudy.tasks import TASKS

TOP_LEVEL = ("name", "description", "tasks", "fixed", "axes", "exclude", "sampler_seed")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
Scalar = str | int | float | bool


@dataclass(frozen=True)
class GridPoint:
    key: str  # stable "axis=value,…" over the sorted axis names
    params: dict[str, Scalar]  # the axis values, typed as in Config
    config: Config
    config_hash: str  # Config.hash(), computed once


@dataclass(frozen=True)
class StudySpec:
    name: str
    description: str
    path: str
    fixed: dict[str, Scalar]
    axes: dict[str, tuple[Scalar, ...]]  # "task" first, then the file's axes
    exclude: tuple[dict[str, tuple[Scalar, ...]], ...]  # axis → values it matches
    sampler_seed: int

    def points(self) -> list[GridPoint]:
        """The grid in GridSampler order, without excluded points."""
        points = []
        for params in grid_order(self.axes, self.sampler_seed):
            if any(all(params[k] in v for k, v in rule.items()) for rule in self.exclude):
                continue
            try:
                config = make_config(**self.fixed, **params)
            except ConfigError as err:
                where = f"{_locate(self, str(err))} (grid point {grid_key(params)})"
                raise self.error(where) from None
            if config.resolved_eval_max_len <= config.train_max_len:
                raise self.error(
                    "fixed.eval_max_len: must exceed train_max_len (the study measures "
                    f"length generalisation), got {config.eval_max_len}"
                )
            points.append(GridPoint(grid_key(params), params, config, config.hash()))
        return points

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {message}")


def grid_key(params: dict[str, Scalar]) -> str:
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


def fingerprint(points: list[GridPoint]) -> str:
    """Changes whenever a grid point is added, removed or gets a different config."""
    items = sorted((p.key, p.config_hash) for p in points)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:12]


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
    if not spec.points():  # validates every grid point
        raise spec.error("exclude: leaves no grid point; allowed: rules that keep some")
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
    for key in ("name", "tasks", "axes"):
        if key not in raw:
            raise fail(f"missing key {key!r}")
    name = raw["name"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise fail(f"name: expected letters, digits, '_', '.' or '-', got {name!r}")
    seed = raw.get("sampler_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise fail(f"sampler_seed: expected an integer in [0, 2**32), got {seed!r}")
    tasks = _values(fail, "tasks", "task", raw["tasks"])
    for task in tasks:
        if task not in TASKS:
            raise fail(f"tasks: unknown task {task!r}; allowed: {', '.join(TASKS)}")
    fixed = _settings(fail, "fixed", raw.get("fixed") or {})
    file_axes = _mapping(fail, "axes", raw["axes"])
    axes = {"task": tasks}
    for key, values in file_axes.items():
        _check_field(fail, "axes", key)
        if key in fixed:
            raise fail(f"axes.{key}: also in fixed; a setting is either fixed or an axis")
        axes[key] = _values(fail, f"axes.{key}", key, values)
    exclude = tuple(_rule(fail, i, rule, axes) for i, rule in enumerate(raw.get("exclude") or []))
    return StudySpec(name, str(raw.get("description", "")), path, fixed, axes, exclude, seed)


def _mapping(fail, where: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise fail(f"{where}: expected a mapping of setting: value, got {value!r}")
    return value


def _check_field(fail, where: str, key: Any) -> None:
    if key == "task":
        raise fail(f"{where}.task: list tasks under the top-level key 'tasks'")
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


def _settings(fail, where: str, raw: Any) -> dict[str, Scalar]:
    fixed = {}
    for key, value in _mapping(fail, where, raw).items():
        _check_field(fail, where, key)
        fixed[key] = _typed(fail, f"{where}.{key}", key, value)
    return fixed


def _values(fail, where: str, field: str, raw: Any) -> tuple[Scalar, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail(f"{where}: expected a non-empty list of values, got {raw!r}")
    values = tuple(_typed(fail, where, field, v) for v in raw)
    if len(set(values)) < len(values):
        raise fail(f"{where}: values repeat: {list(values)}")
    return values


def _rule(fail, index: int, raw: Any, axes: dict) -> dict[str, tuple[Scalar, ...]]:
    """One exclusion: axis → a value or a list of values; a point matching every axis of
    the rule is left out of the grid."""
    where = f"exclude[{index}]"
    rule = {}
    for key, value in _mapping(fail, where, raw).items():
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


def _locate(spec: StudySpec, message: str) -> str:
    """Prefix a Config error with the study key it came from ("axes.heads: …")."""
    field = re.split(r"[:=]", message, maxsplit=1)[0]
    if field in spec.axes:
        return f"axes.{field}: {message.removeprefix(field + ': ')}"
    if field in spec.fixed:
        return f"fixed.{field}: {message.removeprefix(field + ': ')}"
    return message
