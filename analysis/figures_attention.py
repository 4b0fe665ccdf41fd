"""The attention-map figure: recorded attention weights per head, matplotlib Figure out."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def attention_heads(examples: dict[str, dict[str, np.ndarray]]) -> Figure | None:
    """Attention weights per head in the last layer of each example (title -> the
    ``attention.npz`` arrays ``layer{i}_{kind}``: (H, Tq, Tk)); one block per title with a
    row per kind (self, cross) and a column per head."""
    blocks = {title: _last(maps) for title, maps in examples.items() if _last(maps)}
    if not blocks:
        return None
    cols = max(examples[t][k].shape[0] for t, keys in blocks.items() for k in keys)
    heights = [len(keys) for keys in blocks.values()]
    fig = Figure(
        figsize=(max(2.4 * cols + 1.5, 7.0), 2.7 * sum(heights) + 0.7 * len(blocks)),
        layout="constrained",
    )
    subfigs = np.atleast_1d(fig.subfigures(len(blocks), 1, height_ratios=heights))
    for sub, (title, keys) in zip(subfigs, blocks.items(), strict=True):
        _attention_block(sub, title, {k: examples[title][k] for k in keys}, cols)
    return fig


def _attention_block(sub, title: str, maps: dict[str, np.ndarray], cols: int) -> None:
    axes = sub.subplots(len(maps), cols, squeeze=False)
    for (key, weights), row in zip(maps.items(), axes, strict=True):
        for head, ax in enumerate(row):
            if head >= weights.shape[0]:
                ax.set_axis_off()
                continue
            image = ax.imshow(weights[head], vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"{key} · head {head + 1}", fontsize=9)
            ax.set_xlabel("key position (token)", fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        row[0].set_ylabel("query position (token)", fontsize=8)
    lines = [line for part in title.split("\n") for line in textwrap.wrap(part, 80)]
    sub.suptitle("\n".join(lines), fontsize=10)
    sub.colorbar(image, ax=axes.ravel().tolist(), label="attention weight (fraction)")


def _last(maps: dict[str, np.ndarray]) -> list[str]:
    """Keys of the last layer's maps (self before cross)."""
    keys = [k for k in maps if k.startswith("layer") and maps[k].ndim == 3]
    if not keys:
        return []
    last = max(int(k.removeprefix("layer").split("_")[0]) for k in keys)
    return sorted(k for k in keys if k.startswith(f"layer{last}_"))[::-1]
