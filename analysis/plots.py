"""Figures of the report: tidy DataFrame in, matplotlib Figure out; no I/O, no pyplot state.

Colours, markers and axis labels come from ``analysis.figures_style``, panels and legends
from ``analysis.figures_layout``; figures are faceted by task and architecture. Intervals
resample seeds (``analysis.seeds``); a series with one seed is drawn without an interval and
the legend says "n = 1, no interval". Each function returns None when its frame holds
nothing it could draw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from attnstudy import schema
from attnstudy.analysis import figures_layout as layout
from attnstudy.analysis.aggregate import mean_reciprocal_rank, ok_runs
from attnstudy.analysis.effects import NEAR_OOD
from attnstudy.analysis.figures_style import (
    CI_ALPHA,
    CURVE_TITLES,
    LABELS,
    POSITION_SPLITS,
    TITLES,
    TRAINED,
    label_style,
    no_line,
    no_marker,
    palette,
    style,
)
from attnstudy.analysis.seeds import seed_means, seed_summary
from attnstudy.analysis.variants import (
    POSITION_NAMES,
    SCORE_NAMES,
    flag,
    ordered,
    transformers,
    variant_labels,
    variant_order,
)

PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
HEATMAP_ROW = 0.24  # inches per variant row of the length heatmap
HEATMAP_COLUMN_IN = 0.55  # inches per cell of the score x encoding heatmap, its number fits
MIN_HEATMAP_ROWS = 4  # a panel's height in rows at least, so its labels fit
MAX_TICKS = 12  # length labels on a heatmap axis
POSITION_BINS = 8  # relative-position bins of the per-position figure's training lengths


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
    panels = layout.panels(data)
    fig, axes = layout.wrapped(len(panels))
    single = set()
    for (task, arch), ax in zip(panels, axes, strict=True):
        cell = table[(table["task"] == task) & (table["arch"] == arch)]
        single |= _length_lines(ax, cell, metric, hue)
        _mark_training(ax, data[(data["task"] == task) & (data["arch"] == arch)])
        ax.set(title=f"{task} · {arch}", xlabel=LABELS["length"], ylabel=LABELS[metric])
        ax.set_ylim(-0.03, 1.03)
    layout.legend(fig, axes, single)
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
    panels = layout.panels(data)
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
    return with_score.where(flag(frame, schema.USES_POSITIONS), labels)


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
    if lengths.empty or flag(lengths, schema.USES_POSITIONS).all():
        return None
    data = lengths.assign(variant=lengths["arch"])
    table = seed_summary(data, ["task", "variant", "length"], ["seq_acc"])
    tasks = layout.levels(lengths, "task")
    fig, axes = layout.wrapped(len(tasks))
    single = set()
    for task, ax in zip(tasks, axes, strict=True):
        single |= _length_lines(ax, table[table["task"] == task], "seq_acc", "variant")
        _mark_training(ax, lengths[lengths["task"] == task])
        ax.set(title=task, xlabel=LABELS["length"], ylabel=LABELS["seq_acc"], ylim=(-0.03, 1.03))
    layout.legend(fig, axes, single)
    return fig


def score_position_heatmap(runs: pd.DataFrame, metric: str = NEAR_OOD) -> Figure | None:
    """Mean ``metric`` over ok runs for each score function x positional encoding, one
    heatmap per task and transformer architecture, one 0..1 colour scale."""
    ok = transformers(ok_runs(runs, metric))
    if ok.empty:
        return None
    panels = layout.panels(ok)
    width = max(3.6, HEATMAP_COLUMN_IN * ok["position"].nunique() + 1.4)
    fig, axes = layout.wrapped(len(panels), panel=(width, 3.2))
    for (task, arch), ax in zip(panels, axes, strict=True):
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
    metrics = (schema.ID_SEQ_ACC, NEAR_OOD)
    fig, axes = layout.facets(len(rows), len(metrics))
    single = set()
    for ((task, arch, width), metric), ax in layout.axes_by_level(rows, metrics, axes):
        cell = ok[(ok["task"] == task) & (ok["arch"] == arch) & (ok["d_model"] == width)]
        single |= _dodged(ax, cell, "heads", sorted(cell["heads"].unique()), metric)
        layout.panel_title(ax, f"{task} · {arch} · d_model {width}", TITLES[metric])
        ax.set_xlabel("attention heads (count, width fixed)")
    layout.legend(fig, axes, single)
    return fig


def architecture_effect(runs: pd.DataFrame) -> Figure | None:
    """Exact match per architecture and encoding (mean and 95% CI over seeds), one row per
    task; drawn only when the study has two or more architectures."""
    ok = ok_runs(runs)
    if ok["arch"].nunique() < 2:
        return None
    tasks, metrics = layout.levels(ok, "task"), (schema.ID_SEQ_ACC, NEAR_OOD)
    fig, axes = layout.facets(len(tasks), len(metrics))
    single = set()
    for (task, metric), ax in layout.axes_by_level(tasks, metrics, axes):
        cell = ok[ok["task"] == task]
        single |= _dodged(ax, cell, "arch", layout.levels(cell, "arch"), metric)
        layout.panel_title(ax, task, TITLES[metric])
        ax.set_xlabel("architecture")
    layout.legend(fig, axes, single)
    return fig


def training_curves(curves: pd.DataFrame) -> Figure | None:
    """Training loss and in-distribution validation exact match against the step, mean over
    runs per encoding, one row per task and architecture."""
    metrics = [m for m in (schema.TRAIN_LOSS, schema.VAL_SEQ_ACC) if (curves["metric"] == m).any()]
    if curves.empty or not metrics:
        return None
    data = curves.assign(variant=variant_labels(curves))
    panels = layout.panels(data)
    fig, axes = layout.facets(len(panels), len(metrics))
    for ((task, arch), metric), ax in layout.axes_by_level(panels, metrics, axes):
        cell = data[(data["task"] == task) & (data["arch"] == arch) & (data["metric"] == metric)]
        means = cell.groupby(["variant", "step"])["value"].mean()
        for label in variant_order(cell["variant"]):
            line = means.loc[label]
            ax.plot(line.index, line.to_numpy(), label=label, **no_marker(style(label)))
        layout.panel_title(ax, f"{task} · {arch}", CURVE_TITLES[metric])
        ax.set_xlabel(LABELS["step"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.set_ylabel(LABELS[metric])
        if metric == schema.TRAIN_LOSS:
            _log_axis(ax)
        else:
            ax.set_ylim(-0.03, 1.03)
    layout.legend(fig, axes)
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
    metrics = [
        m for m in (schema.N_PARAMS, schema.STEP_TIME_MS, schema.PEAK_MEM_MB) if ok[m].notna().any()
    ]
    if ok.empty or not metrics:
        return None
    panels = layout.panels(ok)
    fig, axes = layout.facets(len(panels), len(metrics), panel=(3.0, 2.8))
    single = set()
    for ((task, arch), metric), ax in layout.axes_by_level(panels, metrics, axes):
        cell = ok[(ok["task"] == task) & (ok["arch"] == arch)]
        single |= _dodged(ax, cell, "score", layout.levels(cell, "score"), metric)
        layout.panel_title(ax, f"{task} · {arch}", LABELS[metric].split(" (")[0])
        ax.set_xlabel("score function")
        ax.set_ylim(bottom=0)
    layout.legend(fig, axes, single)
    return fig


def per_position_accuracy(positions: pd.DataFrame) -> Figure | None:
    """Token accuracy by target position, mean over runs per encoding, the RNN baselines
    beside the transformers; one row per task and architecture. Training lengths (left): by
    relative position (i + ½)/T (T target tokens), within each length and then averaged over
    lengths, so long lengths do not stand for late positions alone. Longer lengths (right):
    by absolute position."""
    if positions.empty:
        return None
    data = positions.assign(variant=variant_labels(positions))
    panels, splits = layout.panels(data), [s for s in ("id", "ood") if (data["split"] == s).any()]
    fig, axes = layout.facets(len(panels), len(splits))
    for ((task, arch), split), ax in layout.axes_by_level(panels, splits, axes):
        cell = data[(data["task"] == task) & (data["arch"] == arch) & (data["split"] == split)]
        means = _relative_positions(cell) if split == "id" else _absolute_positions(cell)
        for label in variant_order(cell["variant"]):
            line = means.loc[label]
            ax.plot(line.index, line.to_numpy(), label=label, markersize=3, **style(label))
        layout.panel_title(ax, f"{task} · {arch}", POSITION_SPLITS[split])
        ax.set_xlabel(LABELS[f"{split}_position"])
        if split == "ood":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(ylabel=LABELS["token_acc"], ylim=(-0.03, 1.03))
    layout.legend(fig, axes)
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


def mrr_ranking(runs: pd.DataFrame, metric: str = NEAR_OOD) -> Figure | None:
    """Mean reciprocal rank (Kazemnejad et al. 2023) of the positional encodings and of the
    score functions of the transformer runs, ranked within each task and architecture;
    plain and randomized positions ranked apart (one row each). None unless there are two
    or more tasks or architectures to rank across."""
    ok = transformers(ok_runs(runs, metric))
    if ok.empty or max(ok["task"].nunique(), ok["arch"].nunique()) < 2:
        return None
    axes_names = [a for a in ("position", "score") if ok[a].nunique() > 1] or ["position"]
    kinds = {False: "plain positions", True: "randomized positions"}
    rows = [r for r in kinds if (ok["randomized"].astype(bool) == r).any()]
    fig, axes = layout.facets(len(rows), len(axes_names), panel=(4.4, 3.0))
    for (randomized, axis), ax in layout.axes_by_level(rows, axes_names, axes):
        group = ok[ok["randomized"].astype(bool) == randomized]
        table = mean_reciprocal_rank(group, axis=axis, metric=metric, fixed=("arch",))
        colors = [palette()[0].get(v, "0.5") if axis == "position" else "0.5" for v in table[axis]]
        ax.barh(table[axis].astype(str), table["mrr"], color=colors)
        ax.invert_yaxis()
        ax.bar_label(ax.containers[0], fmt="%.2f", padding=2)
        ax.set(xlim=(0, 1.15), xlabel="mean reciprocal rank (1 = best in every cell)")
        ax.set(ylabel="positional encoding" if axis == "position" else "score function")
        subtitle = f"{metric} over {table['n_strata'].max()} task × architecture cells"
        layout.panel_title(ax, kinds[randomized], subtitle)
    return fig


def _length_lines(ax, table: pd.DataFrame, metric: str, hue: str) -> set[str]:
    """A line per ``hue`` label with its band over seeds; returns the labels with one seed,
    drawn without a band."""
    single = set()
    for label in HUES[hue][1](table[hue]):
        g = table[table[hue] == label].sort_values("length")
        drawn = label_style(label)
        ax.plot(g["length"], g[f"{metric}_mean"], label=label, markersize=3, **drawn)
        if g[f"{metric}_n"].max() < 2:
            single.add(label)
            continue
        low, high = g[f"{metric}_low"], g[f"{metric}_high"]
        ax.fill_between(g["length"], low, high, color=drawn["color"], alpha=CI_ALPHA, linewidth=0)
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
        drawn = no_line(style(label))
        ax.plot(xs, mean, label=label, **drawn)
        wide = n >= 2
        yerr = [mean[wide] - low[wide], high[wide] - mean[wide]]
        ax.errorbar(xs[wide], mean[wide], yerr=yerr, fmt="none", ecolor=drawn["color"], capsize=2)
        if (n == 1).any():
            single.add(label)
    ax.set_xticks(range(len(levels)), [str(v) for v in levels])
    ax.set_ylabel(LABELS.get(metric, metric))
    if metric.endswith("_acc"):
        ax.set_ylim(-0.03, 1.03)
    return single
