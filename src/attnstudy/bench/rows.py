"""One row of the benchmark table: what was measured, its value, the reference it is
compared with, the ratio, the goal and whether it is met."""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field

GOALS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass
class Row:
    section: str
    what: str
    value: float
    unit: str
    reference: float | None = None  # in the same unit
    ratio: float | None = None  # value / reference, or the share the goal is about
    goal: str = ""  # e.g. "<= 1.10"; empty: informational
    met: bool | None = None
    note: str = ""
    params: dict = field(default_factory=dict)  # machine-readable keys (score, shape, …)

    def to_dict(self) -> dict:
        return asdict(self)


def row(
    section: str,
    what: str,
    value: float,
    unit: str,
    reference: float | None = None,
    goal: tuple[str, float] | None = None,
    ratio: float | None = None,
    note: str = "",
    **params,
) -> Row:
    """A Row whose ratio defaults to value / reference and whose `met` follows the goal
    (op, bound) applied to the ratio."""
    if ratio is None and reference:
        ratio = value / reference
    met = None
    if goal is not None and ratio is not None and not math.isnan(ratio):
        met = GOALS[goal[0]](ratio, goal[1])
    text = f"{goal[0]} {goal[1]:g}" if goal else ""
    return Row(section, what, value, unit, reference, ratio, text, met, note, params)
