"""How the report's figures are laid out: panels per task and architecture (in registry
order, wrapped so a page shows them near full size), short two-line panel titles and one
legend per figure below its panels."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from attnstudy.analysis.figures_style import MARKS, NO_INTERVAL, label_order
from attnstudy.analysis.variants import ARCH_NAMES, SCORE_NAMES, TASK_NAMES, ordered

PANEL = (3.4, 2.8)  # inches per facet; the PDF shows a figure up to 7 inches wide
MAX_COLUMNS = 2  # panels per row where one panel per task and architecture wraps
LEGEND_COLUMN_IN = 1.6  # inches a legend column takes
LEGEND_LINE_IN = 0.2
REGISTRY_ORDER = {"task": TASK_NAMES, "arch": ARCH_NAMES, "score": SCORE_NAMES}


def levels(frame: pd.DataFrame, column: str) -> list:
    """The values of ``column`` present, registry order where there is one."""
    return ordered(frame[column].dropna(), REGISTRY_ORDER.get(column, ()))


def panels(frame: pd.DataFrame) -> list[tuple]:
    """The panels of a figure faceted by task and architecture: the (task, architecture)
    pairs with rows, in registry order."""
    present = set(zip(frame["task"], frame["arch"], strict=True))
    archs = ordered(frame["arch"], ARCH_NAMES)
    return [(t, a) for t in levels(frame, "task") for a in archs if (t, a) in present]


def facets(rows: int, cols: int, panel: tuple[float, float] = PANEL):
    fig = Figure(figsize=(panel[0] * cols + 0.4, panel[1] * rows + 0.3), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def wrapped(n: int, panel: tuple[float, float] = PANEL) -> tuple[Figure, list]:
    """``n`` panels in rows of at most MAX_COLUMNS (so a page shows them near full size)."""
    cols = min(n, MAX_COLUMNS)
    fig, axes = facets(-(-n // cols), cols, panel)
    for ax in axes.ravel()[n:]:
        fig.delaxes(ax)
    return fig, list(axes.ravel()[:n])


def axes_by_level(row_levels: Sequence, col_levels: Sequence, axes: np.ndarray):
    """Each (row level, column level) with its panel, row by row."""
    for i, row in enumerate(row_levels):
        for j, col in enumerate(col_levels):
            yield (row, col), axes[i][j]


def panel_title(ax, *lines: str) -> None:
    """A panel title on short lines (what the panel holds, then which part of it)."""
    ax.set_title("\n".join(lines), fontsize=10)


def legend(fig: Figure, axes, single: set[str] = frozenset()) -> None:
    """One legend for the figure, below the panels (the figure grows to hold it): each label
    once, in ``label_order``, then marks such as the training lengths; titled when some
    series have one seed."""
    handles: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    marks = [label for label in handles if label in MARKS]
    order = label_order([label for label in handles if label not in MARKS]) + marks
    if not order:
        return
    title = _single_title(single, set(handles) - set(marks))
    width, height = fig.get_size_inches()
    ncols = max(1, min(len(order), int(width / LEGEND_COLUMN_IN)))
    lines = -(-len(order) // ncols) + (title.count("\n") + 1 if title else 0)
    fig.set_size_inches(width, height + LEGEND_LINE_IN * lines + 0.2)
    fig.legend(
        [handles[k] for k in order],
        order,
        loc="outside lower center",
        ncols=ncols,
        fontsize=8,
        title=title,
        title_fontsize=8,
    )


def _single_title(single: set[str], drawn: set[str]) -> str | None:
    """The legend's note on series drawn without an interval (one seed)."""
    if not single:
        return None
    if single >= drawn:
        return NO_INTERVAL
    return "\n".join(textwrap.wrap(f"{NO_INTERVAL}: {', '.join(label_order(single))}", 50))
