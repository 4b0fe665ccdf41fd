"""Figures of the report: tidy DataFrame in, matplotlib Figure out; no I/O, no pyplot state.

Every positional encoding keeps one colour (seaborn's colour-blind palette) in every figure;
randomized positions are dashed in their encoding's colour; the architectures without
positional encodings (the RNN baselines) are drawn in black and grey. Each function returns
None when its frame holds nothing it could draw.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from analysis.aggregate import accuracy_by_length, bootstrap_ci, mean_reciprocal_rank, ok_runs
from attnstudy.positions import POSITIONS

POSITION_ORDER = tuple(POSITIONS)  # registry order; a name the registry lacks comes last
PALETTE = dict(
    zip(POSITION_ORDER, sns.color_palette("colorblind", len(POSITION_ORDER)), strict=False)
)
MARKERS = dict(zip(POSITION_ORDER, "os^DvPX*hp<>", strict=False))
RNN_ARCHS = ("rnn", "rnn-attention")
ARCH_ORDER = ("encoder", "decoder", "encoder-decoder", *RNN_ARCHS)
ARCH_STYLES = {
    "encoder": {"color": "0.55", "linestyle": ":", "marker": "v"},
    "decoder": {"color": "0.55", "linestyle": "-", "marker": "^"},
    "encoder-decoder": {"color": "0.55", "linestyle": "-.", "marker": "D"},
    "rnn": {"color": "black", "linestyle": "-", "marker": "o"},
    "rnn-attention": {"color": "black", "linestyle": "--", "marker": "s"},
}
RANDOMIZED = " (randomized)"
TRAINED = "longest training length"
MARKS = (TRAINED,)
LABELS = {
    "seq_acc": "exact match (fraction of sequences)",
    "token_acc": "token accuracy (fraction of tokens)",
    "id_seq_acc": "in-distribution exact match (fraction)",
    "ood_seq_acc": "out-of-distribution exact match (fraction)",
    "id_token_acc": "in-distribution token accuracy (fraction)",
    "ood_token_acc": "out-of-distribution token accuracy (fraction)",
    "length": "input length (tokens)",
    "n_params": "parameters (count)",
    "step_time_ms": "training step time (ms)",
    "peak_mem_mb": "activation memory per step (MB)",
    "train_loss": "training loss (nats per token)",
    "val_seq_acc": "validation exact match (fraction)",
    "step": "training step",
    "target_pos": "target position (0 = first output token)",
    "id_position": "relative target position (i + ½) / target length",
    "ood_position": "target position (0 = first output token)",
}
POSITION_SPLITS = {"id": "training lengths", "ood": "longer than training"}
POSITION_BINS = 8
CURVE_TITLES = {"train_loss": "training loss", "val_seq_acc": "validation on training lengths"}
TITLES = {"id_seq_acc": "training lengths", "ood_seq_acc": "longer than training"}
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
PANEL = (3.6, 2.8)  # inches per facet
CI_ALPHA = 0.2


def variant_labels(frame: pd.DataFrame) -> pd.Series:
    """The name a run is drawn under: its positional encoding (marked when randomized), or
    its architecture for the RNN baselines, which take no positional encoding."""
    rnn = frame["arch"].isin(RNN_ARCHS)
    randomized = frame["randomized"].fillna(False).astype(bool)
    position = frame["position"].astype(str) + np.where(randomized, RANDOMIZED, "")
    return pd.Series(np.where(rnn, frame["arch"], position), index=frame.index, name="variant")


def style(label: str) -> dict:
    """Colour, line style and marker of a variant label (see ``variant_labels``): each
    encoding its own colour and marker, dashed when randomized."""
    if label in ARCH_STYLES:
        return dict(ARCH_STYLES[label])
    base = label.removesuffix(RANDOMIZED)
    dashed = label.endswith(RANDOMIZED)
    marker = MARKERS.get(base, "o")
    return {
        "color": PALETTE.get(base, "0.3"),
        "linestyle": "--" if dashed else "-",
        "marker": marker,
    }


def variant_order(labels: Sequence[str]) -> list[str]:
    """Encodings in POSITION_ORDER (each before its randomized form), then architectures."""
    known = [*POSITION_ORDER, *ARCH_ORDER]

    def key(label: str) -> tuple:
        base = label.removesuffix(RANDOMIZED)
        return (known.index(base) if base in known else len(known), label != base, label)

    return sorted(set(labels), key=key)


def accuracy_vs_length(lengths: pd.DataFrame, metric: str = "seq_acc") -> Figure | None:
    """Mean accuracy by length, one line per encoding with a 95% bootstrap band over runs,
    faceted task (rows) x architecture (columns), the longest training length marked."""
    if lengths.empty:
        return None
    data = lengths.assign(variant=variant_labels(lengths))
    table = accuracy_by_length(data, ["task", "arch", "variant"])
    tasks, archs = _levels(data, "task"), _levels(data, "arch", ARCH_ORDER)
    fig, axes = _facets(len(tasks), len(archs))
    for (task, arch), ax in _cells(tasks, archs, axes):
        cell = table[(table["task"] == task) & (table["arch"] == arch)]
        if cell.empty:
            _empty(ax, f"{task} · {arch}")
            continue
        _length_lines(ax, cell, metric)
        _mark_trained(ax, data[(data["task"] == task) & (data["arch"] == arch)])
        ax.set(title=f"{task} · {arch}", xlabel=LABELS["length"], ylabel=LABELS[metric])
        ax.set_ylim(-0.03, 1.03)
    _legend(fig, axes)
    return fig


def architectures_vs_length(lengths: pd.DataFrame) -> Figure | None:
    """Exact match by length per architecture (transformers averaged over their variants),
    one panel per task; drawn only when the study has an RNN baseline."""
    if lengths.empty or not lengths["arch"].isin(RNN_ARCHS).any():
        return None
    table = accuracy_by_length(lengths.assign(variant=lengths["arch"]), ["task", "variant"])
    tasks = _levels(lengths, "task")
    fig, axes = _facets(1, len(tasks))
    for task, ax in zip(tasks, axes[0], strict=True):
        _length_lines(ax, table[table["task"] == task], "seq_acc")
        _mark_trained(ax, lengths[lengths["task"] == task])
        ax.set(title=task, xlabel=LABELS["length"], ylabel=LABELS["seq_acc"], ylim=(-0.03, 1.03))
    _legend(fig, axes)
    return fig


def score_position_heatmap(runs: pd.DataFrame, metric: str = "ood_seq_acc") -> Figure | None:
    """Mean ``metric`` over ok runs for each score function x positional encoding, one
    heatmap per task (rows) x transformer architecture (columns), one 0..1 colour scale."""
    ok = _transformers(ok_runs(runs, metric))
    if ok.empty:
        return None
    tasks, archs = _levels(ok, "task"), _levels(ok, "arch", ARCH_ORDER)
    fig, axes = _facets(len(tasks), len(archs), panel=(4.2, 3.2))
    for (task, arch), ax in _cells(tasks, archs, axes):
        cell = ok[(ok["task"] == task) & (ok["arch"] == arch)]
        if cell.empty:
            _empty(ax, f"{task} · {arch}")
            continue
        table = cell.pivot_table(index="score", columns="position", values=metric, aggfunc="mean")
        table = table[_levels(cell, "position", POSITION_ORDER)]
        sns.heatmap(table, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=False)
        ax.set(title=f"{task} · {arch}", xlabel="positional encoding", ylabel="score function")
    mesh = next(ax.collections[0] for ax in axes.ravel() if ax.collections)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), label=LABELS[metric])
    return fig


def heads_effect(runs: pd.DataFrame) -> Figure | None:
    """Exact match against the number of heads, one row per task and width (d_model) run
    with two or more head counts; mean and 95% bootstrap CI over runs per encoding."""
    ok = _transformers(ok_runs(runs))
    rows = [k for k, g in ok.groupby(["task", "d_model"]) if g["heads"].nunique() > 1]
    if not rows:
        return None
    metrics = ("id_seq_acc", "ood_seq_acc")
    fig, axes = _facets(len(rows), len(metrics))
    for ((task, width), metric), ax in _cells(rows, metrics, axes):
        cell = ok[(ok["task"] == task) & (ok["d_model"] == width)]
        _dodged(ax, cell, "heads", sorted(cell["heads"].unique()), metric)
        ax.set(title=f"{task} · d_model {width} · {TITLES[metric]}")
        ax.set_xlabel("attention heads (count, width fixed)")
    _legend(fig, axes)
    return fig


def architecture_effect(runs: pd.DataFrame) -> Figure | None:
    """Exact match per architecture and encoding (mean and 95% CI over runs); drawn only
    when the study has two or more architectures."""
    ok = ok_runs(runs)
    archs = _levels(ok, "arch", ARCH_ORDER)
    if len(archs) < 2:
        return None
    metrics = ("id_seq_acc", "ood_seq_acc")
    fig, axes = _facets(1, len(metrics), panel=(5.0, 3.0))
    for metric, ax in zip(metrics, axes[0], strict=True):
        _dodged(ax, ok, "arch", archs, metric)
        ax.set(title=TITLES[metric], xlabel="architecture")
    _legend(fig, axes)
    return fig


def training_curves(curves: pd.DataFrame) -> Figure | None:
    """Training loss and in-distribution validation exact match against the step, mean over
    runs per encoding, one row per task."""
    metrics = [m for m in ("train_loss", "val_seq_acc") if (curves["metric"] == m).any()]
    if curves.empty or not metrics:
        return None
    data = curves.assign(variant=variant_labels(curves))
    tasks = _levels(data, "task")
    fig, axes = _facets(len(tasks), len(metrics), panel=(4.6, 2.8))
    for (task, metric), ax in _cells(tasks, metrics, axes):
        cell = data[(data["task"] == task) & (data["metric"] == metric)]
        means = cell.groupby(["variant", "step"])["value"].mean()
        for label in variant_order(cell["variant"]):
            line = means.loc[label]
            ax.plot(line.index, line.to_numpy(), label=label, **_no_marker(style(label)))
        ax.set(title=f"{task} · {CURVE_TITLES[metric]}", xlabel=LABELS["step"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(LABELS[metric])
        if metric == "train_loss":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PLAIN)
            ax.yaxis.set_minor_formatter(PLAIN)
        else:
            ax.set_ylim(-0.03, 1.03)
    _legend(fig, axes)
    return fig


def cost_figure(runs: pd.DataFrame) -> Figure | None:
    """Parameters, step time and activation memory per score function and encoding (mean
    and 95% CI over runs), from the runs that finished."""
    ok = ok_runs(runs)
    metrics = [m for m in ("n_params", "step_time_ms", "peak_mem_mb") if ok[m].notna().any()]
    if ok.empty or not metrics:
        return None
    scores = _levels(ok, "score")
    fig, axes = _facets(1, len(metrics), panel=(4.4, 3.2))
    for metric, ax in zip(metrics, axes[0], strict=True):
        _dodged(ax, ok, "score", scores, metric)
        ax.set(title=LABELS[metric].split(" (")[0], xlabel="score function")
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_ylim(bottom=0)
    _legend(fig, axes)
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
    """Token accuracy by target position, mean over runs per encoding, the RNN baselines
    beside the transformers; one row per task. Training lengths (left): by relative position
    (i + ½)/T (T target tokens), within each length and then averaged over lengths, so long lengths
    do not stand for late positions alone. Longer lengths (right): by absolute position."""
    if positions.empty:
        return None
    data = positions.assign(variant=variant_labels(positions))
    tasks, splits = _levels(data, "task"), [s for s in ("id", "ood") if (data["split"] == s).any()]
    fig, axes = _facets(len(tasks), len(splits), panel=(4.6, 2.8))
    for (task, split), ax in _cells(tasks, splits, axes):
        cell = data[(data["task"] == task) & (data["split"] == split)]
        means = _relative_positions(cell) if split == "id" else _absolute_positions(cell)
        for label in variant_order(cell["variant"]):
            line = means.loc[label]
            ax.plot(line.index, line.to_numpy(), label=label, markersize=3, **style(label))
        ax.set(title=f"{task} · {POSITION_SPLITS[split]}", xlabel=LABELS[f"{split}_position"])
        if split == "ood":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(ylabel=LABELS["token_acc"], ylim=(-0.03, 1.03))
    _legend(fig, axes)
    return fig


def _relative_positions(cell: pd.DataFrame) -> pd.Series:
    """Mean token accuracy per (variant, relative-position bin centre): within each run and
    length first, then over lengths, then over runs."""
    width = cell.groupby(["run_id", "length"])["target_pos"].transform("max") + 1
    relative = (cell["target_pos"] + 0.5) / width  # target lengths differ by task
    bins = np.minimum((relative * POSITION_BINS).astype(int), POSITION_BINS - 1)
    cell = cell.assign(bin=(bins + 0.5) / POSITION_BINS)
    per_length = cell.groupby(["variant", "run_id", "length", "bin"])["token_acc"].mean()
    per_run = per_length.groupby(level=["variant", "run_id", "bin"]).mean()
    return per_run.groupby(level=["variant", "bin"]).mean()


def _absolute_positions(cell: pd.DataFrame) -> pd.Series:
    return cell.groupby(["variant", "target_pos"])["token_acc"].mean()


def mrr_ranking(runs: pd.DataFrame, metric: str = "ood_seq_acc") -> Figure | None:
    """Mean reciprocal rank (Kazemnejad et al. 2023) of the positional encodings and of the
    score functions of the transformer runs, ranked within each task and architecture;
    plain and randomized positions ranked apart (one row each). None unless there are two
    or more tasks or architectures to rank across."""
    ok = _transformers(ok_runs(runs, metric))
    if ok.empty or max(ok["task"].nunique(), ok["arch"].nunique()) < 2:
        return None
    axes_names = [a for a in ("position", "score") if ok[a].nunique() > 1] or ["position"]
    kinds = {False: "plain positions", True: "randomized positions"}
    rows = [r for r in kinds if (ok["randomized"].astype(bool) == r).any()]
    fig, axes = _facets(len(rows), len(axes_names), panel=(4.4, 3.0))
    for (randomized, axis), ax in _cells(rows, axes_names, axes):
        group = ok[ok["randomized"].astype(bool) == randomized]
        table = mean_reciprocal_rank(group, axis=axis, metric=metric, fixed=("arch",))
        colors = [PALETTE.get(v, "0.5") if axis == "position" else "0.5" for v in table[axis]]
        ax.barh(table[axis].astype(str), table["mrr"], color=colors)
        ax.invert_yaxis()
        ax.bar_label(ax.containers[0], fmt="%.2f", padding=2)
        ax.set(xlim=(0, 1.15), xlabel="mean reciprocal rank (1 = best in every task)")
        ax.set(ylabel="positional encoding" if axis == "position" else "score function")
        strata = table["n_strata"].max()
        ax.set_title(f"{kinds[randomized]}: {metric} over {strata} task × architecture cells")
    return fig


def _length_lines(ax, table: pd.DataFrame, metric: str) -> None:
    for label in variant_order(table["variant"]):
        g = table[table["variant"] == label].sort_values("length")
        look = style(label)
        ax.plot(g["length"], g[f"{metric}_mean"], label=label, markersize=3, **look)
        low, high = g[f"{metric}_ci_low"], g[f"{metric}_ci_high"]
        ax.fill_between(g["length"], low, high, color=look["color"], alpha=CI_ALPHA, linewidth=0)


def _mark_trained(ax, lengths: pd.DataFrame) -> None:
    """A vertical line at the longest training length of the runs drawn in ``ax``."""
    trained = lengths["train_max_len"].max()
    ax.axvline(trained, color="0.2", linewidth=1, linestyle=":", label=TRAINED)


def _dodged(ax, frame: pd.DataFrame, x: str, levels: Sequence, metric: str) -> None:
    """Mean and 95% bootstrap CI of ``metric`` per level of ``x`` and variant, side by side."""
    data = frame.assign(variant=variant_labels(frame))
    labels = variant_order(data["variant"])
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        rows = data[data["variant"] == label]
        points = [_mean_ci(rows.loc[rows[x] == level, metric]) for level in levels]
        offset = (i - (len(labels) - 1) / 2) * width
        mean, low, high = (np.array(v, dtype=float) for v in zip(*points, strict=True))
        xs = np.arange(len(levels)) + offset
        look = _no_line(style(label))
        ax.errorbar(xs, mean, yerr=[mean - low, high - mean], label=label, capsize=2, **look)
    ax.set_xticks(range(len(levels)), [str(v) for v in levels])
    ax.set_ylabel(LABELS.get(metric, metric))
    if metric.endswith("_acc"):
        ax.set_ylim(-0.03, 1.03)


def _mean_ci(values: pd.Series) -> tuple[float, float, float]:
    if values.dropna().empty:
        return np.nan, np.nan, np.nan
    low, high = bootstrap_ci(values)
    return float(values.mean()), low, high


def _transformers(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[~runs["arch"].isin(RNN_ARCHS)]


def _levels(frame: pd.DataFrame, column: str, order: Sequence = ()) -> list:
    present = set(frame[column].dropna())
    return [v for v in order if v in present] + sorted(present - set(order))


def _facets(rows: int, cols: int, panel: tuple[float, float] = PANEL):
    fig = Figure(figsize=(panel[0] * cols + 2.0, panel[1] * rows + 0.4), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def _cells(row_levels: Sequence, col_levels: Sequence, axes: np.ndarray):
    for i, row in enumerate(row_levels):
        for j, col in enumerate(col_levels):
            yield (row, col), axes[i][j]


def _empty(ax, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _legend(fig: Figure, axes: np.ndarray) -> None:
    """One legend for the figure, outside the panels: each label once, variants in
    ``variant_order``, then marks such as the training length."""
    handles: dict[str, object] = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    marks = [label for label in handles if label in MARKS]
    order = variant_order([label for label in handles if label not in MARKS]) + marks
    if order:
        fig.legend([handles[k] for k in order], order, loc="outside right upper", fontsize=8)


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
