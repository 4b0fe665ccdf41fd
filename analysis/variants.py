"""The names runs are grouped and drawn under, their order, and the facts their classes
declare, read from the registries when first used.

Tasks, encodings, score functions and architectures are ordered as ``attnstudy`` registers
them (``TASKS``, ``POSITIONS``, ``SCORES``, ``ARCHS``, insertion order); a name no registry
holds (a store written by other code) is ordered after the known ones, alphabetically, and
is never dropped. What the analysis knows of a variant (its family, whether it is
shift-invariant, length-aware, long-range, takes positions or attention) is declared on its
class and read here, never listed by name.

The registries live beside the model code, so this module imports them inside `registry`:
importing the analysis loads no torch; reading a registry does, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

RANDOMIZED = " (randomized)"


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
POSITIONLESS_ARCHS = RegisteredNames("arch", lambda cls: not cls.uses_positions)
ATTENTIONLESS_ARCHS = RegisteredNames("arch", lambda cls: not cls.uses_attention)


def ordered(names: Iterable, known: Sequence) -> list:
    """The distinct ``names`` in the order of ``known``, unknown ones last (sorted as text)."""
    known = tuple(known)

    def key(name) -> tuple:
        return (0, known.index(name), "") if name in known else (1, 0, str(name))

    return sorted(set(names), key=key)


def variant_labels(frame: pd.DataFrame) -> pd.Series:
    """The name a run is drawn under: its positional encoding (marked when randomized), or
    its architecture for those that take none (`Arch.uses_positions`: the RNN baselines)."""
    positionless = frame["arch"].isin(POSITIONLESS_ARCHS)
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
    return runs[~runs["arch"].isin(POSITIONLESS_ARCHS)]
