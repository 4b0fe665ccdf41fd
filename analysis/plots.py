"""Figures of the report: tidy DataFrame in, matplotlib Figure out; no I/O, no pyplot state.

Every positional encoding and every score function keeps one colour (from seaborn's
colour-blind and dark palettes, in registry order; a name no registry holds gets a fallback
colour and is drawn last) in every figure; randomized positions are dashed in their
encoding's colour; the architectures without positional encodings (the RNN baselines) are
drawn in black and grey. Figures are faceted by task and architecture. Intervals resample
seeds (``analysis.seeds``); a series with one seed is drawn without an interval and the
legend says "n = 1, no interval". Each function returns None when its frame holds nothing it
could draw.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from analysis.aggregate import mean_reciprocal_rank, ok_runs
from analysis.seeds import seed_means, seed_summary
from analysis.variants import (
    ARCH_NAMES,
    POSITION_NAMES,
    RANDOMIZED,
    RNN_ARCHS,
    SCORE_NAMES,
    TASK_NAMES,
    ordered,
    transformers,
    variant_labels,
    variant_order,
)

MARKER_CYCLE = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")


def _palette(names: Sequence[str], palette: str) -> tuple[dict, tuple]:
    """One colour per registered name, and a further one for names no registry holds."""
    colours = sns.color_palette(palette, len(names) + 1)
    return dict(zip(names, colours[:-1], strict=True)), colours[-1]


def _markers(names: Sequence[str]) -> dict[str, str]:
    return {name: MARKER_CYCLE[i % len(MARKER_CYCLE)] for i, name in enumerate(names)}


PALETTE, FALLBACK_COLOUR = _palette(POSITION_NAMES, "colorblind")
SCORE_PALETTE, SCORE_FALLBACK_COLOUR = _palette(SCORE_NAMES, "dark")
MARKERS, SCORE_MARKERS = _markers(POSITION_NAMES), _markers(SCORE_NAMES)
ARCH_STYLES = {
    "encoder": {"color": "0.55", "linestyle": ":", "marker": "v"},
    "decoder": {"color": "0.55", "linestyle": "-", "marker": "^"},
    "encoder-decoder": {"color": "0.55", "linestyle": "-.", "marker": "D"},
    "rnn": {"color": "black", "linestyle": "-", "marker": "o"},
    "rnn-attention": {"color": "black", "linestyle": "--", "marker": "s"},
}
TRAINED = "training lengths"
MARKS = (TRAINED,)
NO_INTERVAL = "n = 1, no interval"
LABELS = {  # short enough for a panel's side; the panel title says which split it shows
    "seq_acc": "exact match (fraction)",
    "token_acc": "token accuracy (fraction)",
    "id_seq_acc": "ID exact match (fraction)",
    "ood_seq_acc": "OOD exact match (fraction)",
    "id_token_acc": "ID token accuracy (fraction)",
    "ood_token_acc": "OOD token accuracy (fraction)",
    "length": "input length (tokens)",
    "n_params": "parameters (count)",
    "step_time_ms": "step time (ms)",
    "peak_mem_mb": "activation memory (MB)",
    "train_loss": "loss (nats per token)",
    "val_seq_acc": "exact match (fraction)",
    "step": "training step",
    "target_pos": "output position (0 = first)",
}
CURVE_TITLES = {"train_loss": "training loss", "val_seq_acc": "validation on training lengths"}
TITLES = {"id_seq_acc": "training lengths", "ood_seq_acc": "longer than training"}
REGISTRY_ORDER = {"task": TASK_NAMES, "arch": ARCH_NAMES, "score": SCORE_NAMES}
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
PANEL = (3.4, 2.8)  # inches per facet; the PDF shows a figure up to 7 inches wide
HEATMAP_ROW = 0.24  # inches per variant row of the length heatmap
HEATMAP_COLUMN_IN = 0.55  # inches per cell of the score x encoding heatmap, its number fits
MIN_HEATMAP_ROWS = 4  # a panel's height in rows at least, so its labels fit
MAX_TICKS = 12  # length labels on a heatmap axis
CI_ALPHA = 0.2
MAX_COLUMNS = 2  # panels per row where one panel per task and architecture wraps
LEGEND_COLUMN_IN = 1.6  # inches a legend column takes
LEGEND_LINE_IN = 0.2


def style(label: str) -> dict:
    """Colour, line style and marker of a variant label (see ``variant_labels``): each
    encoding its own colour and marker, dashed when randomized."""
    if label in ARCH_STYLES:
        return dict(ARCH_STYLES[label])
    base = label.removesuffix(RANDOMIZED)
    return {
        "color": PALETTE.get(base, FALLBACK_COLOUR),
        "linestyle": "--" if label.endswith(RANDOMIZED) else "-",
        "marker": MARKERS.get(base, "o"),
    }


def score_style(name: str) -> dict:
    """Colour, line style and marker of a score function."""
    return {
        "color": SCORE_PALETTE.get(name, SCORE_FALLBACK_COLOUR),
        "linestyle": "-",
        "marker": SCORE_MARKERS.get(name, "o"),
    }


def label_order(labels: Iterable[str]) -> list[str]:
    """Score functions in registry order, then variants (``variant_order``)."""
    labels = set(labels)
    scores = [s for s in SCORE_NAMES if s in labels]
    return scores + variant_order(labels - set(scores))


def _look(label: str) -> dict:
    return score_style(label) if label in SCORE_NAMES else style(label)


HUES: dict[str, tuple[Callable[[pd.DataFrame], pd.Series], Callable]] = {
    "variant": (variant_labels, variant_order),
    "score": (lambda frame: frame["score"].astype(str), lambda s: ordered(s, SCORE_NAMES)),
}


def accuracy_vs_length(
    lengths: pd.DataFrame, metric: str = "seq_acc", hue: str = "variant"
) -> Figure | None:
    """Mean accuracy by length, one line per encoding (``hue="variant"``) or per score
    function (``hue="score"``: transformers only, drawn when two or more score functions
    ran) with a 95% bootstrap band over seeds,
    one panel per task and architecture, the training lengths shaded."""
    data = lengths if hue == "variant" else transformers(lengths)
    if data.empty or (hue == "score" and data["score"].nunique() < 2):
        return None
    labels, _ = HUES[hue]
    data = data.assign(**{hue: labels(data)})
    table = seed_summary(data, ["task", "arch", hue, "length"], [metric])
    pairs = _pairs(data)
    fig, axes = _wrapped(len(pairs))
    single = set()
    for (task, arch), ax in zip(pairs, axes, strict=True):
        cell = table[(table["task"] == task) & (table["arch"] == arch)]
        single |= _length_lines(ax, cell, metric, hue)
        _mark_training(ax, data[(data["task"] == task) & (data["arch"] == arch)])
        ax.set(title=f"{task} · {arch}", xlabel=LABELS["length"], ylabel=LABELS[metric])
        ax.set_ylim(-0.03, 1.03)
    _legend(fig, axes, single)
    return fig


def length_heatmap(lengths: pd.DataFrame, metric: str = "seq_acc") -> Figure | None:
    """Mean ``metric`` over seeds at every length (columns) for every variant (rows: the
    encoding, and the score function where it varies), one panel per task and architecture
    (Delétang et al. 2023's view); a white line ends the training lengths."""
    if lengths.empty:
        return None
    data = lengths.assign(row=_heatmap_rows(lengths))
    means = seed_means(data, ["task", "arch", "row", "length"], [metric])
    table = means.groupby(["task", "arch", "row", "length"], dropna=False)[metric].mean()
    panels = _pairs(data)
    rows = [table.loc[p].index.get_level_values("row").nunique() for p in panels]
    heights = [max(n, MIN_HEATMAP_ROWS) for n in rows]
    fig = Figure(
        figsize=(9.0, HEATMAP_ROW * sum(heights) + 1.1 * len(panels) + 0.4),
        layout="constrained",
    )
    axes = np.atleast_1d(fig.subplots(len(panels), 1, height_ratios=heights, squeeze=False)[:, 0])
    for (task, arch), ax in zip(panels, axes, strict=True):
        grid = table.loc[(task, arch)].unstack("length")
        grid = grid.loc[_row_order(grid.index)]
        sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=False)
        _heatmap_ticks(ax, grid)
        seen = data.loc[(data["task"] == task) & (data["arch"] == arch) & data["in_distribution"]]
        if not seen.empty:
            ax.axvline(list(grid.columns).index(seen["length"].max()) + 1, color="white", lw=2)
        ax.set(title=f"{task} · {arch}", ylabel="variant")
        ax.set_xlabel(LABELS["length"])
    fig.colorbar(axes[0].collections[0], ax=axes.tolist(), label=LABELS[metric], shrink=0.9)
    return fig


def _heatmap_rows(frame: pd.DataFrame) -> pd.Series:
    """A heatmap row per variant label, joined with the score function where scores vary."""
    labels = variant_labels(frame)
    if transformers(frame)["score"].nunique() < 2:
        return labels
    with_score = labels + " · " + frame["score"].astype(str)
    return with_score.where(~frame["arch"].isin(RNN_ARCHS), labels)


def _row_order(rows: Iterable[str]) -> list[str]:
    """Heatmap rows by variant (``variant_order``), then by score function."""
    rows = list(rows)
    variants = variant_order({r.partition(" · ")[0] for r in rows})
    scores = ordered({r.partition(" · ")[2] for r in rows}, SCORE_NAMES)

    def key(row: str) -> tuple[int, int]:
        variant, _, score = row.partition(" · ")
        return variants.index(variant), scores.index(score)

    return sorted(rows, key=key)


def _heatmap_ticks(ax, grid: pd.DataFrame) -> None:
    """At most about MAX_TICKS length labels at round lengths, centred on their columns;
    every row labelled."""
    columns = list(grid.columns)
    rounds = MaxNLocator(nbins=MAX_TICKS, integer=True, steps=[1, 2, 5, 10])
    shown = [c for c in rounds.tick_values(min(columns), max(columns)) if c in columns]
    ax.set_xticks([columns.index(c) + 0.5 for c in shown], [f"{c:g}" for c in shown])
    ax.tick_params(axis="x", labelrotation=0)
    ax.set_yticks(np.arange(len(grid.index)) + 0.5, list(grid.index), fontsize=8, rotation=0)


def architectures_vs_length(lengths: pd.DataFrame) -> Figure | None:
    """Exact match by length per architecture (transformers averaged over their variants),
    one panel per task; drawn only when the study has an RNN baseline."""
    if lengths.empty or not lengths["arch"].isin(RNN_ARCHS).any():
        return None
    data = lengths.assign(variant=lengths["arch"])
    table = seed_summary(data, ["task", "variant", "length"], ["seq_acc"])
    tasks = _levels(lengths, "task")
    fig, axes = _wrapped(len(tasks))
    single = set()
    for task, ax in zip(tasks, axes, strict=True):
        single |= _length_lines(ax, table[table["task"] == task], "seq_acc", "variant")
        _mark_training(ax, lengths[lengths["task"] == task])
        ax.set(title=task, xlabel=LABELS["length"], ylabel=LABELS["seq_acc"], ylim=(-0.03, 1.03))
    _legend(fig, axes, single)
    return fig


def score_position_heatmap(runs: pd.DataFrame, metric: str = "ood_seq_acc") -> Figure | None:
    """Mean ``metric`` over ok runs for each score function x positional encoding, one
    heatmap per task and transformer architecture, one 0..1 colour scale."""
    ok = transformers(ok_runs(runs, metric))
    if ok.empty:
        return None
    pairs = _pairs(ok)
    width = max(3.6, HEATMAP_COLUMN_IN * ok["position"].nunique() + 1.4)
    fig, axes = _wrapped(len(pairs), panel=(width, 3.2))
    for (task, arch), ax in zip(pairs, axes, strict=True):
        cell = ok[(ok["task"] == task) & (ok["arch"] == arch)]
        table = cell.pivot_table(index="score", columns="position", values=metric, aggfunc="mean")
        table = table.loc[ordered(table.index, SCORE_NAMES), ordered(table.columns, POSITION_NAMES)]
        sns.heatmap(table, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=False)
        ax.set(title=f"{task} · {arch}", xlabel="positional encoding", ylabel="score function")
        ax.tick_params(axis="x", labelrotation=90)
    fig.colorbar(axes[0].collections[0], ax=list(axes), label=LABELS[metric])
    return fig


def heads_effect(runs: pd.DataFrame) -> Figure | None:
    """Exact match against the number of heads, one row per task, architecture and width
    (d_model) run with two or more head counts; mean and 95% CI over seeds per encoding."""
    ok = transformers(ok_runs(runs))
    groups = ["task", "arch", "d_model"]
    rows = [k for k, g in ok.groupby(groups) if g["heads"].nunique() > 1]
    if not rows:
        return None
    metrics = ("id_seq_acc", "ood_seq_acc")
    fig, axes = _facets(len(rows), len(metrics))
    single = set()
    for ((task, arch, width), metric), ax in _cells(rows, metrics, axes):
        cell = ok[(ok["task"] == task) & (ok["arch"] == arch) & (ok["d_model"] == width)]
        single |= _dodged(ax, cell, "heads", sorted(cell["heads"].unique()), metric)
        _title(ax, f"{task} · {arch} · d_model {width}", TITLES[metric])
        ax.set_xlabel("attention heads (count, width fixed)")
    _legend(fig, axes, single)
    return fig


def architecture_effect(runs: pd.DataFrame) -> Figure | None:
    """Exact match per architecture and encoding (mean and 95% CI over seeds), one row per
    task; drawn only when the study has two or more architectures."""
    ok = ok_runs(runs)
    if ok["arch"].nunique() < 2:
        return None
    tasks, metrics = _levels(ok, "task"), ("id_seq_acc", "ood_seq_acc")
    fig, axes = _facets(len(tasks), len(metrics))
    single = set()
    for (task, metric), ax in _cells(tasks, metrics, axes):
        cell = ok[ok["task"] == task]
        single |= _dodged(ax, cell, "arch", _levels(cell, "arch"), metric)
        _title(ax, task, TITLES[metric])
        ax.set_xlabel("architecture")
    _legend(fig, axes, single)
    return fig


def training_curves(curves: pd.DataFrame) -> Figure | None:
    """Training loss and in-distribution validation exact match against the step, mean over
    runs per encoding, one row per task and architecture."""
    metrics = [m for m in ("train_loss", "val_seq_acc") if (curves["metric"] == m).any()]
    if curves.empty or not metrics:
        return None
    data = curves.assign(variant=variant_labels(curves))
    pairs = _pairs(data)
    fig, axes = _facets(len(pairs), len(metrics))
    for ((task, arch), metric), ax in _cells(pairs, metrics, axes):
        cell = data[(data["task"] == task) & (data["arch"] == arch) & (data["metric"] == metric)]
        means = cell.groupby(["variant", "step"])["value"].mean()
        for label in variant_order(cell["variant"]):
            line = means.loc[label]
            ax.plot(line.index, line.to_numpy(), label=label, **_no_marker(style(label)))
        _title(ax, f"{task} · {arch}", CURVE_TITLES[metric])
        ax.set_xlabel(LABELS["step"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.set_ylabel(LABELS[metric])
        if metric == "train_loss":
            _log_axis(ax)
        else:
            ax.set_ylim(-0.03, 1.03)
    _legend(fig, axes)
    return fig


def _log_axis(ax) -> None:
    """A log y axis labelled at 1, 2 and 5 times powers of ten, without minor labels."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(PLAIN)
    ax.yaxis.set_minor_formatter(NullFormatter())


def cost_figure(runs: pd.DataFrame) -> Figure | None:
    """Parameters, step time and activation memory per score function and encoding (mean
    and 95% CI over seeds), from the runs that finished; one row per task and architecture."""
    ok = ok_runs(runs)
    metrics = [m for m in ("n_params", "step_time_ms", "peak_mem_mb") if ok[m].notna().any()]
    if ok.empty or not metrics:
        return None
    pairs = _pairs(ok)
    fig, axes = _facets(len(pairs), len(metrics), panel=(3.0, 2.8))
    single = set()
    for ((task, arch), metric), ax in _cells(pairs, metrics, axes):
        cell = ok[(ok["task"] == task) & (ok["arch"] == arch)]
        single |= _dodged(ax, cell, "score", _levels(cell, "score"), metric)
        _title(ax, f"{task} · {arch}", LABELS[metric].split(" (")[0])
        ax.set_xlabel("score function")
        ax.set_ylim(bottom=0)
    _legend(fig, axes, single)
    return fig


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


def per_position_accuracy(positions: pd.DataFrame) -> Figure | None:
    """Token accuracy at each target position, in- and out-of-distribution lengths, mean
    over runs per encoding, the RNN baselines beside the transformers; one row per task and
    architecture."""
    if positions.empty:
        return None
    data = positions.assign(variant=variant_labels(positions))
    pairs, splits = _pairs(data), [s for s in ("id", "ood") if (data["split"] == s).any()]
    fig, axes = _facets(len(pairs), len(splits))
    names = {"id": "training lengths", "ood": "longer than training"}
    for ((task, arch), split), ax in _cells(pairs, splits, axes):
        cell = data[(data["task"] == task) & (data["arch"] == arch) & (data["split"] == split)]
        means = cell.groupby(["variant", "target_pos"])["token_acc"].mean()
        for label in variant_order(cell["variant"]):
            line = means.loc[label]
            ax.plot(line.index, line.to_numpy(), label=label, markersize=3, **style(label))
        _title(ax, f"{task} · {arch}", names[split])
        ax.set_xlabel(LABELS["target_pos"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(ylabel=LABELS["token_acc"], ylim=(-0.03, 1.03))
    _legend(fig, axes)
    return fig


def mrr_ranking(runs: pd.DataFrame, metric: str = "ood_seq_acc") -> Figure | None:
    """Mean reciprocal rank across tasks (Kazemnejad et al. 2023) of the positional encodings
    and of the score functions of the transformer runs."""
    ok = transformers(ok_runs(runs, metric))
    if ok.empty:
        return None
    axes_names = [a for a in ("position", "score") if ok[a].nunique() > 1] or ["position"]
    fig, axes = _facets(1, len(axes_names), panel=(4.4, 3.0))
    for axis, ax in zip(axes_names, axes[0], strict=True):
        table = mean_reciprocal_rank(ok, axis=axis, metric=metric, fixed=("arch",))
        colors = [PALETTE.get(v, "0.5") if axis == "position" else "0.5" for v in table[axis]]
        ax.barh(table[axis].astype(str), table["mrr"], color=colors)
        ax.invert_yaxis()
        ax.bar_label(ax.containers[0], fmt="%.2f", padding=2)
        ax.set(xlim=(0, 1.15), xlabel="mean reciprocal rank (1 = best in every task)")
        ax.set(ylabel="positional encoding" if axis == "position" else "score function")
        ax.set_title(f"ranked by {metric} over {table['n_strata'].max()} task(s)")
    return fig


def _length_lines(ax, table: pd.DataFrame, metric: str, hue: str) -> set[str]:
    """A line per ``hue`` label with its band over seeds; returns the labels with one seed,
    drawn without a band."""
    single = set()
    for label in HUES[hue][1](table[hue]):
        g = table[table[hue] == label].sort_values("length")
        look = _look(label)
        ax.plot(g["length"], g[f"{metric}_mean"], label=label, markersize=3, **look)
        if g[f"{metric}_n"].max() < 2:
            single.add(label)
            continue
        low, high = g[f"{metric}_low"], g[f"{metric}_high"]
        ax.fill_between(g["length"], low, high, color=look["color"], alpha=CI_ALPHA, linewidth=0)
    return single


def _mark_training(ax, lengths: pd.DataFrame) -> None:
    """Shade the training lengths of the runs drawn in ``ax``."""
    seen = lengths.loc[lengths["in_distribution"].astype(bool), "length"]
    if not seen.empty:
        span = (seen.min() - 0.5, seen.max() + 0.5)
        ax.axvspan(*span, color="0.88", linewidth=0, zorder=0, label=TRAINED)


def _dodged(ax, frame: pd.DataFrame, x: str, levels: Sequence, metric: str) -> set[str]:
    """Mean and 95% CI over seeds of ``metric`` per level of ``x`` and variant, side by
    side; returns the variants with one seed somewhere, drawn without an interval there."""
    table = seed_summary(frame.assign(variant=variant_labels(frame)), [x, "variant"], [metric])
    labels = variant_order(table["variant"])
    width, single = 0.8 / max(len(labels), 1), set()
    for i, label in enumerate(labels):
        rows = table[table["variant"] == label].set_index(x).reindex(levels)
        mean, low, high = (rows[f"{metric}_{s}"].to_numpy(float) for s in ("mean", "low", "high"))
        n = rows[f"{metric}_n"].fillna(0).to_numpy()
        xs = np.arange(len(levels)) + (i - (len(labels) - 1) / 2) * width
        look = _no_line(style(label))
        ax.plot(xs, mean, label=label, **look)
        wide = n >= 2
        yerr = [mean[wide] - low[wide], high[wide] - mean[wide]]
        ax.errorbar(xs[wide], mean[wide], yerr=yerr, fmt="none", ecolor=look["color"], capsize=2)
        if (n == 1).any():
            single.add(label)
    ax.set_xticks(range(len(levels)), [str(v) for v in levels])
    ax.set_ylabel(LABELS.get(metric, metric))
    if metric.endswith("_acc"):
        ax.set_ylim(-0.03, 1.03)
    return single


def _levels(frame: pd.DataFrame, column: str) -> list:
    """The values of ``column`` present, registry order where there is one."""
    return ordered(frame[column].dropna(), REGISTRY_ORDER.get(column, ()))


def _pairs(frame: pd.DataFrame) -> list[tuple]:
    """The (task, architecture) pairs with rows, in registry order."""
    present = set(zip(frame["task"], frame["arch"], strict=True))
    archs = ordered(frame["arch"], ARCH_NAMES)
    return [(t, a) for t in _levels(frame, "task") for a in archs if (t, a) in present]


def _facets(rows: int, cols: int, panel: tuple[float, float] = PANEL):
    fig = Figure(figsize=(panel[0] * cols + 0.4, panel[1] * rows + 0.3), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def _wrapped(n: int, panel: tuple[float, float] = PANEL) -> tuple[Figure, list]:
    """``n`` panels in rows of at most MAX_COLUMNS (so a page shows them near full size)."""
    cols = min(n, MAX_COLUMNS)
    fig, axes = _facets(-(-n // cols), cols, panel)
    for ax in axes.ravel()[n:]:
        fig.delaxes(ax)
    return fig, list(axes.ravel()[:n])


def _cells(row_levels: Sequence, col_levels: Sequence, axes: np.ndarray):
    for i, row in enumerate(row_levels):
        for j, col in enumerate(col_levels):
            yield (row, col), axes[i][j]


def _title(ax, *lines: str) -> None:
    """A panel title on short lines (what the panel holds, then which part of it)."""
    ax.set_title("\n".join(lines), fontsize=10)


def _legend(fig: Figure, axes, single: set[str] = frozenset()) -> None:
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


def _last(maps: dict[str, np.ndarray]) -> list[str]:
    """Keys of the last layer's maps (self before cross)."""
    keys = [k for k in maps if k.startswith("layer") and maps[k].ndim == 3]
    if not keys:
        return []
    last = max(int(k.removeprefix("layer").split("_")[0]) for k in keys)
    return sorted(k for k in keys if k.startswith(f"layer{last}_"))[::-1]


def _no_marker(look: dict) -> dict:
    return {k: v for k, v in look.items() if k != "marker"}


def _no_line(look: dict) -> dict:
    return {**look, "linestyle": "none"}
