"""Figures are readable: every axis labelled (numbers with their units), a legend naming what
is drawn, and one colour per positional encoding in every figure. Built from tiny tidy frames
in the shape analysis.load produces, so no training or MLflow is needed."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D

from analysis import plots

CONFIG = {
    "task": "copy",
    "score": "scaled_dot",
    "d_model": 16,
    "n_layers": 1,
    "lr": 3e-3,
    "train_max_len": 4,
    "eval_max_len": 8,
}
VARIANTS = [  # arch, position, randomized, heads
    ("decoder", "sinusoidal", False, 1),
    ("decoder", "sinusoidal", False, 2),
    ("decoder", "learned", False, 2),
    ("decoder", "learned", True, 2),
    ("decoder", "none", False, 2),
    ("encoder", "rope", False, 2),
    ("rnn", "none", False, 1),
]
SEEDS = (0, 1)
LENGTHS = range(1, 9)


def make_runs() -> pd.DataFrame:
    rows = []
    for i, ((arch, position, randomized, heads), seed) in enumerate(
        itertools.product(VARIANTS, SEEDS)
    ):
        rows.append(
            CONFIG
            | {"run_id": f"r{i}", "status": "ok", "arch": arch, "position": position}
            | {"randomized": randomized, "heads": heads, "seed": seed}
            | {"id_seq_acc": 0.9 - 0.05 * i % 3, "ood_seq_acc": 0.1 * (i % 4), "n_params": 1000}
            | {"step_time_ms": 2.0 + i % 2, "peak_mem_mb": 0.2, "attn_sharpness": 0.5}
        )
    return pd.DataFrame(rows)


def per_run(runs: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Rows of a long frame for every run, with the run's config columns."""
    config = ["run_id", "task", "arch", "position", "randomized", "heads", "train_max_len"]
    return pd.DataFrame(
        [r | dict(zip(config, c, strict=True)) for c in runs[config].values for r in rows]
    )


@pytest.fixture(scope="module")
def frames():
    runs = make_runs()
    lengths = per_run(
        runs, [{"length": n, "seq_acc": 1 / n, "token_acc": 1 / n**0.5} for n in LENGTHS]
    )
    lengths["in_distribution"] = lengths["length"] <= lengths["train_max_len"]
    positions = per_run(
        runs,
        [
            {"split": "id", "length": n, "target_pos": p, "token_acc": 0.5 + 0.1 * p}
            for n in range(1, 5)
            for p in range(n)
        ]
        + [
            {"split": "ood", "length": np.nan, "target_pos": p, "token_acc": 0.5 - 0.05 * p}
            for p in range(8)
        ],
    )
    curves = per_run(
        runs,
        [
            {"metric": m, "step": k, "value": 1 / k}
            for m in ("train_loss", "val_seq_acc")
            for k in (10, 20, 30)
        ],
    )
    return {"runs": runs, "lengths": lengths, "positions": positions, "curves": curves}


def all_figures(f):
    attention = {
        "layer0_self": np.full((2, 5, 5), 0.2),
        "layer1_self": np.full((2, 5, 5), 0.2),
        "layer1_cross": np.full((2, 5, 3), 1 / 3),
        "inputs": np.arange(4),
    }
    return {
        "acc_vs_length": plots.accuracy_vs_length(f["lengths"]),
        "token_acc_vs_length": plots.accuracy_vs_length(f["lengths"], "token_acc"),
        "rnn": plots.architectures_vs_length(f["lengths"]),
        "heatmap": plots.score_position_heatmap(f["runs"]),
        "heads": plots.heads_effect(f["runs"]),
        "arch": plots.architecture_effect(f["runs"]),
        "curves": plots.training_curves(f["curves"]),
        "cost": plots.cost_figure(f["runs"]),
        "attention": plots.attention_heads({"best": attention, "worst": attention}),
        "per_position": plots.per_position_accuracy(f["positions"]),
        "mrr": plots.mrr_ranking(f["runs"]),
    }


@pytest.fixture(scope="module")
def figures(frames):
    return all_figures(frames)


def panels(fig):
    """Axes that hold data (colour bars excluded)."""
    return [ax for ax in fig.axes if ax.get_subplotspec() is not None and ax.axison]


def test_every_figure_is_drawn_from_these_frames(figures):
    assert [k for k, fig in figures.items() if fig is None] == []


def test_every_panel_has_axis_labels_and_first_column_a_y_label(figures):
    for name, fig in figures.items():
        for ax in panels(fig):
            assert ax.get_xlabel(), (name, ax.get_title())
            if ax.get_subplotspec().is_first_col():
                assert ax.get_ylabel(), (name, ax.get_title())


@pytest.mark.parametrize(
    ("name", "xlabel", "ylabel"),
    [
        ("acc_vs_length", "input length (tokens)", "exact match (fraction of sequences)"),
        ("token_acc_vs_length", "input length (tokens)", "token accuracy (fraction of tokens)"),
        ("curves", "training step", "training loss (nats per token)"),
        (
            "per_position",
            "relative target position (i + ½) / target length",
            "token accuracy (fraction of tokens)",
        ),
    ],
)
def test_numeric_axes_name_their_units(figures, name, xlabel, ylabel):
    ax = panels(figures[name])[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == (xlabel, ylabel)


def test_cost_panels_state_units(figures):
    labels = [ax.get_ylabel() for ax in panels(figures["cost"])]
    assert labels == [
        "parameters (count)",
        "training step time (ms)",
        "activation memory per step (MB)",
    ]


def test_colour_bars_are_labelled(figures):
    for name in ("heatmap", "attention"):
        bars = [ax for ax in figures[name].axes if ax.get_subplotspec() is None]
        assert bars and all(ax.get_ylabel() for ax in bars), name


@pytest.mark.parametrize(
    "name", ["acc_vs_length", "heads", "arch", "curves", "cost", "per_position"]
)
def test_each_encoding_keeps_one_colour_in_every_figure(figures, name):
    legend = figures[name].legends[0]
    drawn = {
        t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }
    for label, handle in drawn.items():
        if label == plots.TRAINED:
            continue
        assert to_hex(_colour(handle)) == to_hex(plots.style(label)["color"]), (name, label)
        base = label.removesuffix(plots.RANDOMIZED)
        if base in plots.PALETTE:
            assert to_hex(_colour(handle)) == to_hex(plots.PALETTE[base])


def _colour(handle):
    """A legend handle's colour: a line's, or the first of a collection's (error bars)."""
    colour = handle.get_color()
    return colour if isinstance(handle, Line2D) else np.atleast_2d(colour)[0]


def test_encodings_have_distinct_colours_and_randomized_ones_are_dashed():
    colours = [to_hex(c) for c in plots.PALETTE.values()]
    assert len(set(colours)) == len(plots.POSITION_ORDER)
    assert plots.style("learned (randomized)")["linestyle"] == "--"
    assert to_hex(plots.style("learned (randomized)")["color"]) == to_hex(plots.PALETTE["learned"])


def test_legend_lists_every_variant_once_in_a_fixed_order(figures):
    texts = [t.get_text() for t in figures["acc_vs_length"].legends[0].get_texts()]
    variants = ["none", "sinusoidal", "learned", "learned (randomized)", "rope", "rnn"]
    assert texts == [*variants, plots.TRAINED]


def test_longest_training_length_is_marked_in_every_length_panel(figures):
    for ax in panels(figures["acc_vs_length"]):
        vertical = [ln for ln in ax.get_lines() if ln.get_label() == plots.TRAINED]
        assert [tuple(ln.get_xdata()) for ln in vertical] == [(4, 4)]


def test_heatmap_cells_are_mean_ood_exact_match(frames, figures):
    runs = frames["runs"]
    decoder = runs[runs["arch"] == "decoder"]
    ax = next(a for a in panels(figures["heatmap"]) if "decoder" in a.get_title())
    shown = sorted(float(t.get_text()) for t in ax.texts)
    expected = decoder.groupby(["score", "position"])["ood_seq_acc"].mean().round(2)
    assert shown == sorted(expected.tolist())


def test_attention_has_one_panel_per_head_of_the_last_layer(figures):
    images = [ax for ax in panels(figures["attention"]) if ax.get_images()]
    assert len(images) == 2 * 2 * 2  # two examples x (self, cross) x two heads
    assert {ax.get_title().split(" · ")[0] for ax in images} == {"layer1_self", "layer1_cross"}


def test_variant_labels_name_rnn_by_architecture_and_mark_randomized(frames):
    labels = set(plots.variant_labels(frames["runs"]))
    assert labels == {"sinusoidal", "learned", "learned (randomized)", "none", "rope", "rnn"}


def test_figures_without_their_data_are_left_out(frames):
    runs, lengths = frames["runs"], frames["lengths"]
    one_head = runs[runs["heads"] == 2]
    one_arch = runs[runs["arch"] == "decoder"]
    assert plots.heads_effect(one_head) is None
    assert plots.architecture_effect(one_arch) is None
    assert plots.architectures_vs_length(lengths[lengths["arch"] != "rnn"]) is None
    assert plots.accuracy_vs_length(lengths.iloc[:0]) is None
    assert plots.attention_heads({"rnn": {"inputs": np.arange(3)}}) is None


def test_per_position_compares_positions_within_each_training_length(frames):
    # accuracy 0.5 + 0.1·i; lengths 1..4: the first filled bin, [1/8, 1/4), holds only position 0
    ax = panels(plots.per_position_accuracy(frames["positions"]))[0]
    line = ax.get_lines()[0]
    xs, ys = line.get_xdata(), line.get_ydata()
    assert xs[0] == pytest.approx(3 / 16) and ys[0] == pytest.approx(0.5)
    assert all(0 < x < 1 for x in xs)


def test_mrr_ranks_plain_and_randomized_runs_apart(figures):
    titles = [ax.get_title() for ax in panels(figures["mrr"])]
    assert any(t.startswith("plain positions") for t in titles)
    assert any(t.startswith("randomized positions") for t in titles)
    randomized = next(
        ax
        for ax in panels(figures["mrr"])
        if ax.get_title().startswith("randomized") and ax.get_ylabel() == "positional encoding"
    )
    assert [t.get_text() for t in randomized.get_yticklabels()] == ["learned"]


def test_mrr_needs_two_tasks_or_architectures_to_rank_across(frames):
    runs = frames["runs"]
    assert plots.mrr_ranking(runs[runs["arch"] == "decoder"]) is None
    two_tasks = pd.concat([runs, runs.assign(task="reverse")], ignore_index=True)
    assert plots.mrr_ranking(two_tasks[two_tasks["arch"] == "decoder"]) is not None


def test_relative_positions_use_each_tasks_target_length(frames):
    positions = frames["positions"]
    doubled = positions[positions["split"] == "id"].copy()
    doubled["target_pos"] = doubled["target_pos"] * 2  # duplicate: 2L targets of length L
    extra = doubled.assign(target_pos=doubled["target_pos"] + 1)
    ax = panels(plots.per_position_accuracy(pd.concat([doubled, extra])))[0]
    assert max(ax.get_lines()[0].get_xdata()) == pytest.approx(15 / 16)


def test_an_encoding_the_registry_lacks_is_drawn_last_not_dropped(frames):
    runs = frames["runs"]
    unknown = runs[runs["position"] == "rope"].assign(position="zzz-new")
    fig = plots.score_position_heatmap(pd.concat([runs, unknown], ignore_index=True))
    ax = next(a for a in panels(fig) if "encoder" in a.get_title())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rope", "zzz-new"]
    assert plots.variant_order(["zzz-new", "rope", "none"]) == ["none", "rope", "zzz-new"]


def test_position_order_and_colours_come_from_the_registry():
    from attnstudy.positions import POSITIONS

    assert tuple(POSITIONS) == plots.POSITION_ORDER
