"""Figures are readable: every axis labelled (numbers with their units), no two labels on top
of each other, a legend naming what is drawn, one colour per positional encoding and per score
function in every figure, panels per task and architecture, and no zero-width interval from
one seed. Built from tiny tidy frames in the shape analysis.load produces, so no training or
MLflow is needed."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D

from attnstudy.analysis import figures_attention, plots, variants
from attnstudy.analysis import figures_style as styling
from attnstudy.positions import POSITIONS
from attnstudy.schema import (
    ATTN_SHARPNESS,
    ID_SEQ_ACC,
    N_PARAMS,
    NEAR_OOD_SEQ_ACC,
    OOD_SEQ_ACC,
    PEAK_MEM_MB,
    STEP_TIME_MS,
    TRAIN_LOSS,
    VAL_SEQ_ACC,
)
from attnstudy.scores import SCORES

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
            | {ID_SEQ_ACC: 0.9 - 0.05 * i % 3, N_PARAMS: 1000}
            | {NEAR_OOD_SEQ_ACC: 0.35 + 0.15 * (i % 4), OOD_SEQ_ACC: 0.1 * (i % 4)}
            | {STEP_TIME_MS: 2.0 + i % 2, PEAK_MEM_MB: 0.2, ATTN_SHARPNESS: 0.5}
        )
    return pd.DataFrame(rows)


def per_run(runs: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Rows of a long frame for every run, with the run's config columns."""
    config = [
        *("run_id", "task", "arch", "score", "position", "randomized", "heads", "seed"),
        "train_max_len",
    ]
    return pd.DataFrame(
        [r | dict(zip(config, c, strict=True)) for c in runs[config].values for r in rows]
    )


def make_frames(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    lengths = per_run(
        runs, [{"length": n, "seq_acc": 1 / n, "token_acc": 1 / n**0.5} for n in LENGTHS]
    )
    lengths["in_distribution"] = lengths["length"] <= lengths["train_max_len"]
    lengths["seq_acc"] *= 1 - 0.1 * lengths["seed"] - 0.05 * lengths["heads"]
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
            {"metric": m, "step": k, "value": 3 * 10 ** (-k / 10) if m == TRAIN_LOSS else 1 / k}
            for m in (TRAIN_LOSS, VAL_SEQ_ACC)
            for k in (10, 20, 30)  # the loss falls over three decades
        ],
    )
    return {"runs": runs, "lengths": lengths, "positions": positions, "curves": curves}


@pytest.fixture(scope="module")
def frames():
    return make_frames(make_runs())


def all_figures(f):
    attention = {
        "layer0_self": np.full((2, 5, 5), 0.2),
        "layer1_self": np.full((2, 5, 5), 0.2),
        "layer1_cross": np.full((2, 5, 3), 1 / 3),
        "inputs": np.arange(4),
    }
    return {
        "acc_vs_length": plots.accuracy_vs_length(f["lengths"]),
        "score_vs_length": plots.accuracy_vs_length(
            f["lengths"].assign(score=np.where(f["lengths"]["heads"] == 1, "dot", "cosine")),
            hue="score",
        ),
        "length_heatmap": plots.length_heatmap(f["lengths"]),
        "token_acc_vs_length": plots.accuracy_vs_length(f["lengths"], "token_acc"),
        "rnn": plots.architectures_vs_length(f["lengths"]),
        "heatmap": plots.score_position_heatmap(f["runs"]),
        "heads": plots.heads_effect(f["runs"]),
        "arch": plots.architecture_effect(f["runs"]),
        "curves": plots.training_curves(f["curves"]),
        "cost": plots.cost_figure(f["runs"]),
        "attention": figures_attention.attention_heads({"best": attention, "worst": attention}),
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
        ("acc_vs_length", "input length (tokens)", "exact match (fraction)"),
        ("token_acc_vs_length", "input length (tokens)", "token accuracy (fraction)"),
        ("curves", "training step", "loss (nats per token)"),
        ("per_position", "relative position (i + ½) / target length", "token accuracy (fraction)"),
    ],
)
def test_numeric_axes_name_their_units(figures, name, xlabel, ylabel):
    ax = panels(figures[name])[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == (xlabel, ylabel)


def test_cost_panels_state_units(figures):
    first = [ax for ax in panels(figures["cost"]) if ax.get_subplotspec().is_first_row()]
    assert [ax.get_ylabel() for ax in first] == [
        "parameters (count)",
        "step time (ms)",
        "activation memory (MB)",
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
        if label == styling.TRAINED:
            continue
        assert to_hex(_colour(handle)) == to_hex(styling.style(label)["color"]), (name, label)
        base = label.removesuffix(variants.RANDOMIZED)
        colours, _ = styling.palette()
        if base in colours:
            assert to_hex(_colour(handle)) == to_hex(colours[base])


def _colour(handle):
    """A legend handle's colour: a line's, or the first of a collection's (error bars)."""
    colour = handle.get_color()
    return colour if isinstance(handle, Line2D) else np.atleast_2d(colour)[0]


def test_encodings_have_distinct_colours_and_randomized_ones_are_dashed():
    colours, fallback = styling.palette()
    assert len({to_hex(c) for c in [*colours.values(), fallback]}) == len(POSITIONS) + 1
    dashed = styling.style("learned (randomized)")
    assert dashed["linestyle"] == "--"
    assert to_hex(dashed["color"]) == to_hex(colours["learned"])


def test_legend_lists_every_variant_once_in_a_fixed_order(figures):
    texts = [t.get_text() for t in figures["acc_vs_length"].legends[0].get_texts()]
    variants = ["none", "sinusoidal", "learned", "learned (randomized)", "rope", "rnn"]
    assert texts == [*variants, styling.TRAINED]


def test_training_lengths_are_shaded_in_every_length_panel(figures):
    for name in ("acc_vs_length", "score_vs_length", "rnn"):
        for ax in panels(figures[name]):
            spans = [p for p in ax.patches if p.get_label() == styling.TRAINED]
            assert [(p.get_x(), p.get_x() + p.get_width()) for p in spans] == [(0.5, 4.5)], name


def test_heatmap_cells_are_mean_ood_exact_match_up_to_2l(frames, figures):
    runs = frames["runs"]
    decoder = runs[runs["arch"] == "decoder"]
    ax = next(a for a in panels(figures["heatmap"]) if "decoder" in a.get_title())
    shown = sorted(float(t.get_text()) for t in ax.texts)
    expected = decoder.groupby(["score", "position"])[NEAR_OOD_SEQ_ACC].mean().round(2)
    assert shown == sorted(expected.tolist())


def test_ood_panels_and_rankings_read_the_claims_metric(frames, figures):
    """The architecture panel beyond training draws exact match over L < length ≤ 2L (the
    claims' primary), mean over seeds per architecture and encoding, not the mean over
    every longer length; the ranking names the same metric; that panel and the heatmap's
    colour bar name the range in figures_style's words."""
    label, title = styling.LABELS[NEAR_OOD_SEQ_ACC], styling.TITLES[NEAR_OOD_SEQ_ACC]
    ax = next(a for a in panels(figures["arch"]) if a.get_title().endswith(title))
    bars = [a for a in figures["heatmap"].axes if a.get_subplotspec() is None]
    assert ax.get_ylabel() == label and {a.get_ylabel() for a in bars} == {label}
    assert "(L, 2L]" in label and "up to 2L" in title
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    drawn = sorted(round(y, 6) for line in lines for y in line.get_ydata() if not np.isnan(y))
    runs = frames["runs"].assign(variant=variants.variant_labels(frames["runs"]))
    per_seed = runs.groupby(["arch", "variant", "seed"])[NEAR_OOD_SEQ_ACC].mean()
    means = per_seed.groupby(level=["arch", "variant"]).mean()
    assert drawn == sorted(round(v, 6) for v in means)
    assert all(NEAR_OOD_SEQ_ACC in ax.get_title() for ax in panels(figures["mrr"]))


def test_attention_has_one_panel_per_head_of_the_last_layer(figures):
    images = [ax for ax in panels(figures["attention"]) if ax.get_images()]
    assert len(images) == 2 * 2 * 2  # two examples x (self, cross) x two heads
    assert {ax.get_title().split(" · ")[0] for ax in images} == {"layer1_self", "layer1_cross"}


def test_variant_labels_name_rnn_by_architecture_and_mark_randomized(frames):
    labels = set(variants.variant_labels(frames["runs"]))
    assert labels == {"sinusoidal", "learned", "learned (randomized)", "none", "rope", "rnn"}


def test_figures_without_their_data_are_left_out(frames):
    runs, lengths = frames["runs"], frames["lengths"]
    assert plots.accuracy_vs_length(lengths.assign(score="dot"), hue="score") is None
    one_head = runs[runs["heads"] == 2]
    one_arch = runs[runs["arch"] == "decoder"]
    assert plots.heads_effect(one_head) is None
    assert plots.architecture_effect(one_arch) is None
    assert plots.architectures_vs_length(lengths[lengths["arch"] != "rnn"]) is None
    assert plots.accuracy_vs_length(lengths.iloc[:0]) is None
    assert figures_attention.attention_heads({"rnn": {"inputs": np.arange(3)}}) is None


def test_colours_and_order_come_from_the_registries():
    assert tuple(POSITIONS) == tuple(variants.POSITION_NAMES)
    assert tuple(styling.palette()[0]) == tuple(POSITIONS)
    colours, fallback = styling.score_palette()
    assert tuple(colours) == tuple(SCORES)
    assert len({to_hex(c) for c in [*colours.values(), fallback]}) == len(SCORES) + 1


@pytest.mark.parametrize("palette", ["colorblind", "dark"])
@pytest.mark.parametrize("n", [1, 9, 10, 11, 25])
def test_a_palette_never_repeats_a_colour_however_many_variants(palette, n):
    colours = [to_hex(c) for c in styling.distinct_colours(palette, n)]
    assert len(colours) == n
    assert len(set(colours)) == n


@given(st.lists(st.sampled_from([*POSITIONS, "wavelet", "fourier", "zeta"]), max_size=12))
def test_order_keeps_every_name_known_ones_first_in_registry_order(names):
    order = variants.ordered(names, tuple(POSITIONS))
    assert sorted(order) == sorted(set(names))
    known = [n for n in order if n in POSITIONS]
    assert order[: len(known)] == known
    assert known == [p for p in POSITIONS if p in names]
    assert order[len(known) :] == sorted(set(names) - set(POSITIONS))


def test_unknown_encoding_is_drawn_last_in_the_fallback_colour(frames):
    runs = make_runs()
    runs.loc[runs["position"] == "learned", "position"] = "wavelet"
    f = make_frames(runs)
    legend = plots.accuracy_vs_length(f["lengths"]).legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[-3:] == ["wavelet", "wavelet (randomized)", styling.TRAINED]
    handle = legend.legend_handles[texts.index("wavelet")]
    assert to_hex(_colour(handle)) == to_hex(styling.palette()[1])
    heatmap = plots.score_position_heatmap(f["runs"])
    columns = [t.get_text() for t in panels(heatmap)[0].get_xticklabels()]
    assert columns[-1] == "wavelet"


def test_score_lines_keep_one_colour_per_score_function(frames):
    lengths = frames["lengths"].assign(
        score=np.where(frames["lengths"]["heads"] == 1, "dot", "cosine")
    )
    legend = plots.accuracy_vs_length(lengths, hue="score").legends[0]
    drawn = dict(
        zip((t.get_text() for t in legend.get_texts()), legend.legend_handles, strict=True)
    )
    assert list(drawn) == ["dot", "cosine", styling.TRAINED]
    for score in ("dot", "cosine"):
        assert to_hex(_colour(drawn[score])) == to_hex(styling.score_palette()[0][score])


def drawn(fig):
    """The renderer of ``fig``, drawn once: text boxes are known only after a draw."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    return renderer


def overlapping_labels(fig, renderer=None) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes intersect once drawn: visible tick labels of one axis, the
    numbers written in one panel, and any two of the panel titles, axis labels and legend."""
    renderer = renderer or drawn(fig)
    groups = [
        [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
    ]
    labels = [a.label for ax in fig.axes for a in (ax.xaxis, ax.yaxis) if a.label.get_text()]
    groups.append([ax.title for ax in fig.axes if ax.get_title()] + labels + fig.legends)
    groups += [[t for t in ax.texts if t.get_text()] for ax in fig.axes]  # cell annotations
    pairs = []
    for texts in groups:
        boxes = [t.get_window_extent(renderer).shrunk(0.97, 0.9) for t in texts]
        for (a, box_a), (b, box_b) in itertools.combinations(zip(texts, boxes, strict=True), 2):
            if box_a.overlaps(box_b):
                pairs.append((_text(a), _text(b)))
    return pairs


def labels_beyond_panels(fig, renderer=None) -> list[str]:
    """Axis labels longer than the side of the panel they name."""
    renderer = renderer or drawn(fig)
    beyond = []
    for ax in fig.axes:
        panel = ax.get_window_extent(renderer)
        x, y = (a.label.get_window_extent(renderer) for a in (ax.xaxis, ax.yaxis))
        if x.width > panel.width + 1 or y.height > panel.height + 1:
            beyond += [a.label.get_text() for a in (ax.xaxis, ax.yaxis) if a.label.get_text()]
    return beyond


def _text(artist) -> str:
    return artist.get_text() if hasattr(artist, "get_text") else type(artist).__name__


def test_no_two_labels_overlap_in_any_figure(figures):
    for name, fig in figures.items():
        renderer = drawn(fig)  # one draw serves both checks
        assert overlapping_labels(fig, renderer) == [], name
        assert labels_beyond_panels(fig, renderer) == [], name


def test_many_lengths_and_variants_keep_heatmap_labels_apart(frames):
    rows = [{"length": n, "seq_acc": 1 / n, "token_acc": 1.0} for n in range(1, 201)]
    runs = pd.concat([make_runs().assign(score=s) for s in SCORES], ignore_index=True)
    lengths = per_run(runs, rows).assign(in_distribution=lambda f: f["length"] <= 40)
    fig = plots.length_heatmap(lengths)
    assert overlapping_labels(fig) == []
    ax = next(a for a in panels(fig) if a.get_title() == "copy · decoder")
    assert len(ax.get_yticklabels()) == 4 * len(SCORES)  # none, sinusoidal, learned (x2)


def test_score_position_heatmap_numbers_stay_apart_with_every_encoding_and_score():
    runs = pd.concat(
        [make_runs().assign(position=p, score=s) for p in POSITIONS for s in SCORES],
        ignore_index=True,
    )
    fig = plots.score_position_heatmap(runs)
    assert overlapping_labels(fig) == []
    assert len(panels(fig)[0].texts) == len(POSITIONS) * len(SCORES)


def test_one_seed_draws_no_interval_and_says_so():
    f = make_frames(make_runs().query("seed == 0"))
    drawn = {
        "length": plots.accuracy_vs_length(f["lengths"]),
        "heads": plots.heads_effect(f["runs"]),
        "cost": plots.cost_figure(f["runs"]),
    }
    for name, fig in drawn.items():
        assert fig.legends[0].get_title().get_text() == styling.NO_INTERVAL, name
        for ax in panels(fig):
            bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
            bars = [c for c in ax.collections if c.get_segments() if hasattr(c, "get_segments")]
            assert bands == [] and bars == [], name


def test_two_seeds_draw_intervals_without_a_note(figures):
    assert figures["acc_vs_length"].legends[0].get_title().get_text() == ""
    ax = panels(figures["acc_vs_length"])[0]
    assert any(isinstance(c, PolyCollection) for c in ax.collections)


def test_length_heatmap_cells_are_mean_exact_match_by_length(frames, figures):
    ax = next(a for a in panels(figures["length_heatmap"]) if a.get_title() == "copy · decoder")
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["none", "sinusoidal", "learned", "learned (randomized)"]
    decoder = frames["lengths"][frames["lengths"]["arch"] == "decoder"]
    sinusoidal = decoder[decoder["position"] == "sinusoidal"]
    expected = sinusoidal.groupby("length")["seq_acc"].mean().to_numpy()
    shown = ax.collections[0].get_array().reshape(len(rows), -1)[rows.index("sinusoidal")]
    assert np.allclose(shown, expected)


def test_every_figure_has_a_panel_per_task_and_architecture():
    runs = pd.concat(
        [
            make_runs().assign(task=t, run_id=lambda f, t=t: t + f["run_id"])
            for t in ("copy", "sort")
        ],
        ignore_index=True,
    )
    f = make_frames(runs)
    pairs = {(t, a) for t in ("copy", "sort") for a in ("decoder", "encoder", "rnn")}
    transformer_pairs = {p for p in pairs if p[1] != "rnn"}
    expected = {
        "acc_vs_length": pairs,
        "length_heatmap": pairs,
        "heatmap": transformer_pairs,
        "curves": pairs,
        "per_position": pairs,
        "cost": pairs,
        "heads": {("copy", "decoder"), ("sort", "decoder")},
    }
    figures = all_figures(f)
    for name, want in expected.items():
        titles = {ax.get_title() for ax in panels(figures[name])}
        shown = {(t, a) for t, a in pairs if any(x.startswith(f"{t} · {a}") for x in titles)}
        assert shown == want, name
    for name, fig in figures.items():
        renderer = drawn(fig)  # one draw serves both checks
        assert overlapping_labels(fig, renderer) == [], name
        assert labels_beyond_panels(fig, renderer) == [], name
    for name in ("arch", "rnn"):
        titles = [ax.get_title() for ax in panels(figures[name])]
        assert {t.split("\n")[0].split(" · ")[0] for t in titles} == {"copy", "sort"}, name


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
    assert variants.variant_order(["zzz-new", "rope", "none"]) == ["none", "rope", "zzz-new"]
