"""The names runs are grouped and drawn under, and their order, read from the registries.

Tasks, encodings, score functions and architectures are ordered as ``attnstudy`` registers
them (``TASKS``, ``POSITIONS``, ``SCORES``, ``ARCHS``, insertion order); a name no registry
holds (a store written by other code) is ordered after the known ones, alphabetically, and
is never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from attnstudy.archs import ARCHS
from attnstudy.positions import POSITIONS
from attnstudy.scores import SCORES
from attnstudy.tasks import TASKS

POSITION_NAMES = tuple(POSITIONS)
SCORE_NAMES = tuple(SCORES)
ARCH_NAMES = tuple(ARCHS)
TASK_NAMES = tuple(TASKS)
LONG_RANGE_TASKS = tuple(name for name, cls in TASKS.items() if cls.long_range)
POSITIONLESS_ARCHS = tuple(name for name, cls in ARCHS.items() if not cls.uses_positions)
ATTENTIONLESS_ARCHS = tuple(name for name, cls in ARCHS.items() if not cls.uses_attention)
RANDOMIZED = " (randomized)"


def ordered(names: Iterable, known: Sequence) -> list:
    """The distinct ``names`` in the order of ``known``, unknown ones last (sorted as text)."""

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
