"""The names runs are grouped and drawn under, their order (read from the registries when
used), and the facts a run's variant declares (read from the run).

Tasks, encodings, score functions and architectures are ordered as ``attnstudy`` registers
them (``TASKS``, ``POSITIONS``, ``SCORES``, ``ARCHS``, insertion order); a name no registry
holds (a store written by other code) is ordered after the known ones, alphabetically, and
is never dropped.

What the analysis knows of a variant (``schema.VARIANT_FACTS``: its encoding's family,
whether it is shift-invariant or length-aware, whether its architecture takes positions or
attention, whether its task is long-range) is declared on its classes, never listed by name.
A trial logs them when it runs (``tracking.variant_tags``), so a run is read as the code
that trained it declared it (``fact``); a run that logged none (a store written before the
facts were, a frame built by hand) is read from the classes registered now.

The registries live beside the model code, so this module imports them inside ``registry``:
importing the analysis loads no torch; the order of names, and a fact a run did not log,
read a registry and load it, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from attnstudy.schema import (
    USES_POSITIONS,
)

RANDOMIZED = " (randomized)"
AXES = ("task", "arch", "position", "score")  # the config columns a variant's classes name


def registry(axis: str) -> dict[str, type]:
    """The classes registered for a config column (task, arch, position or score), by name,
    in registration order; imports the model code (and torch) on first use."""
    from attnstudy.archs import ARCHS
    from attnstudy.positions import POSITIONS
    from attnstudy.scores import SCORES
    from attnstudy.tasks import TASKS

    return {"task": TASKS, "arch": ARCHS, "position": POSITIONS, "score": SCORES}[axis]


class RegisteredNames(Sequence):
    """The names registered for a config column whose class satisfies ``declares`` (every
    one by default), in registration order, read from the registry each time it is used
    (so a variant registered at run time is in it)."""

    def __init__(self, axis: str, declares: Callable[[type], bool] = lambda cls: True):
        self.axis, self.declares = axis, declares

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, cls in registry(self.axis).items() if self.declares(cls))

    def __getitem__(self, index):
        return self.names()[index]

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name) -> bool:
        return name in self.names()


POSITION_NAMES = RegisteredNames("position")
SCORE_NAMES = RegisteredNames("score")
ARCH_NAMES = RegisteredNames("arch")
TASK_NAMES = RegisteredNames("task")
LONG_RANGE_TASKS = RegisteredNames("task", lambda cls: cls.long_range)


def fact(runs: pd.DataFrame, name: str) -> pd.Series:
    """Each run's fact ``name`` (``schema.VARIANT_FACTS``) as it was logged, or, for a run
    without it, as the registered classes declare it (``registries.declared_facts``)."""
    logged = runs[name] if name in runs else pd.Series(None, index=runs.index, dtype=object)
    missing = logged.isna()
    if not missing.any():
        return logged
    from attnstudy.registries import declared_facts  # the model code: only for old runs

    variants = list(runs.loc[missing, list(AXES)].itertuples(index=False, name=None))
    declared = {variant: declared_facts(*variant)[name] for variant in set(variants)}
    filled = pd.Series([declared[v] for v in variants], index=logged.index[missing])
    return logged.astype(object).where(~missing, filled)


def flag(runs: pd.DataFrame, name: str) -> pd.Series:
    """``fact`` for a yes/no fact (every one but the family), as a boolean column."""
    return fact(runs, name).astype(bool)


def ordered(names: Iterable, known: Sequence) -> list:
    """The distinct ``names`` in the order of ``known``, unknown ones last (sorted as text)."""
    known = tuple(known)

    def key(name) -> tuple:
        return (0, known.index(name), "") if name in known else (1, 0, str(name))

    return sorted(set(names), key=key)


def variant_labels(frame: pd.DataFrame) -> pd.Series:
    """The name a run is drawn under: its positional encoding (marked when randomized), or
    its architecture for those that take none (`Arch.uses_positions`: the RNN baselines)."""
    positionless = ~flag(frame, USES_POSITIONS)
    randomized = frame["randomized"].fillna(False).astype(bool)
    position = frame["position"].astype(str) + np.where(randomized, RANDOMIZED, "")
    labels = np.where(positionless, frame["arch"], position)
    return pd.Series(labels, index=frame.index, name="variant")


def variant_order(labels: Iterable[str]) -> list[str]:
    """Encodings in registry order (each before its randomized form), then architectures,
    then unknown names."""
    known = [*POSITION_NAMES, *ARCH_NAMES]

    def key(label: str) -> tuple:
        base = label.removesuffix(RANDOMIZED)
        rank = known.index(base) if base in known else len(known)
        return (rank, base if rank == len(known) else "", label != base)

    return sorted(set(labels), key=key)


def transformers(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the architectures that take positional encodings (`Arch.uses_positions`)."""
    return runs[flag(runs, USES_POSITIONS)]
