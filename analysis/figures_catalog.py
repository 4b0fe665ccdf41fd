"""The report's figures: every figure it can hold, in order, with its title and caption
(``FIGURES``; the claims refer to figures by key), drawn from a study, numbered and encoded
as PNG data URIs; each is left out when the study has no data for it."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.figure import Figure

from attnstudy.analysis import figures_attention, plots, tables
from attnstudy.analysis.aggregate import ok_runs
from attnstudy.analysis.effects import COMPETENCE_TEXT, competent
from attnstudy.analysis.load import Study, load_attention
from attnstudy.analysis.rules import NEAR_OOD
from attnstudy.schema import ATTN_SHARPNESS, ID_SEQ_ACC

PNG_DPI = 120
MAX_FIGURE_HEIGHT_IN = 8.5  # leaves an A4 page room for the caption
HEADLINE = "acc_vs_length"  # the figure shown second, right after the question


@dataclass(frozen=True)
class FigureSpec:
    key: str  # anchor id; the claims refer to figures by it
    title: str
    caption: str
    make: Callable[[Study], Figure | None]


@dataclass(frozen=True)
class ReportFigure:
    key: str
    number: int
    title: str
    caption: str
    figure: Figure
    src: str  # data: URI of the PNG

    @property
    def width_in(self) -> float:
        """The width to show the figure at (inches): its own, or less where it would be
        taller than MAX_FIGURE_HEIGHT_IN; never wider than the page (the stylesheet's)."""
        width, height = self.figure.get_size_inches()
        return float(min(width, MAX_FIGURE_HEIGHT_IN * width / height))


NEAR_RANGE = "L < length ≤ 2L, L the longest training length; the range the claims test"
SEED_BANDS = (
    "Bands and bars: 95% percentile-bootstrap CI over seeds (each seed's runs averaged "
    "first); none where a series has one seed (the legend then says n = 1, no interval)."
)
FIGURES = (  # every figure the report can hold, in order; each is left out without data
    FigureSpec(
        HEADLINE,
        "Exact match by input length",
        "Exact match (fraction of sequences fully correct) at every evaluated length, one "
        "line per positional encoding (its runs averaged over score functions and head "
        "counts), per task (rows) and architecture (columns); grey: the training lengths. "
        f"{SEED_BANDS}",
        lambda s: plots.accuracy_vs_length(s.lengths),
    ),
    FigureSpec(
        "score_vs_length",
        "Exact match by input length per score function",
        "As Figure 1, one line per score function of the transformers (averaged over "
        f"positional encodings and head counts). {SEED_BANDS}",
        lambda s: plots.accuracy_vs_length(s.lengths, hue="score"),
    ),
    FigureSpec(
        "length_heatmap",
        "Exact match by length and variant",
        "Mean exact match over seeds at every evaluated length (columns) for every variant "
        "(rows: positional encoding, with the score function where the study varies it; head "
        "counts averaged), one panel per task and architecture, the view of Delétang et al. "
        "2023; the white line ends the training lengths.",
        lambda s: plots.length_heatmap(s.lengths),
    ),
    FigureSpec(
        "token_acc_vs_length",
        "Token accuracy by input length",
        f"As Figure 1, for per-token accuracy. {SEED_BANDS}",
        lambda s: plots.accuracy_vs_length(s.lengths, "token_acc"),
    ),
    FigureSpec(
        "heatmap_score_position",
        "Score function × positional encoding",
        f"Mean out-of-distribution exact match ({NEAR_RANGE}) over runs for each score "
        "function and positional encoding; one panel per task and transformer architecture.",
        lambda s: plots.score_position_heatmap(s.runs),
    ),
    FigureSpec(
        "heads",
        "Number of heads at fixed width",
        f"In- and out-of-distribution ({NEAR_RANGE}) exact match against the number of "
        "heads, one row per task, architecture and model width (d_model fixed within a row), "
        f"per positional encoding. {SEED_BANDS}",
        lambda s: plots.heads_effect(s.runs),
    ),
    FigureSpec(
        "arch",
        "Architecture",
        f"In- and out-of-distribution ({NEAR_RANGE}) exact match per architecture and "
        f"encoding, one row per task. {SEED_BANDS}",
        lambda s: plots.architecture_effect(s.runs),
    ),
    FigureSpec(
        "rnn",
        "RNN baselines beside the transformers",
        "Exact match by length per architecture (transformer variants averaged), one panel "
        f"per task; grey: the training lengths. {SEED_BANDS}",
        lambda s: plots.architectures_vs_length(s.lengths),
    ),
    FigureSpec(
        "per_position",
        "Accuracy by target position (claim C1)",
        "Token accuracy by output position, mean over runs, one row per task and "
        "architecture; RNN baselines in black and grey. Left, training lengths: by relative "
        "position (i + ½)/T in eighths (T target tokens), averaged within each length first "
        "and then over lengths (the comparison claim C1 makes). Right, longer lengths: by "
        "absolute position, averaged over the lengths that reach it.",
        lambda s: plots.per_position_accuracy(s.positions),
    ),
    FigureSpec(
        "training_curves",
        "Training curves",
        "Training loss (log scale) and in-distribution validation exact match "
        "against the training step, mean over runs per encoding, one row per task and "
        "architecture.",
        lambda s: plots.training_curves(s.curves),
    ),
    FigureSpec(
        "cost",
        "Cost",
        "Parameters, time per training step and activation memory of one training step "
        "(tensors saved for backward) per score function and encoding, one row per task and "
        f"architecture. {SEED_BANDS}",
        lambda s: plots.cost_figure(s.runs),
    ),
    FigureSpec(
        "attention_maps",
        "Attention maps of the best and worst variants",
        "Attention weights of every head in the last layer on one example of the "
        "longest training length (as the study recorded it), for the variant with "
        f"the highest and the lowest mean out-of-distribution exact match ({NEAR_RANGE}).",
        lambda s: figures_attention.attention_heads(attention_examples(s)),
    ),
    FigureSpec(
        "mrr",
        "Ranking across tasks",
        "Mean reciprocal rank of each positional encoding (and score function) by "
        f"mean out-of-distribution exact match ({NEAR_RANGE}) within each task and "
        "architecture, as Kazemnejad et al. 2023; plain and randomized positions ranked "
        "apart. Drawn only with two or more tasks or architectures to rank across.",
        lambda s: plots.mrr_ranking(s.runs),
    ),
)


def make_figures(data: Study) -> list[ReportFigure]:
    """The figures that have data, numbered, each encoded as a PNG data URI; every value
    beyond the training lengths from competent runs only (`competent_beyond_training`)."""
    data, note = competent_beyond_training(data)
    out = []
    for spec in FIGURES:
        figure = spec.make(data)
        if figure is not None:
            number = len(out) + 1
            caption = f"{spec.caption} {note}"
            out.append(
                ReportFigure(spec.key, number, spec.title, caption, figure, png_data_uri(figure))
            )
    return out


def competent_beyond_training(data: Study) -> tuple[Study, str]:
    """``data`` with every out-of-distribution value of a run that did not learn its
    training lengths removed (its summary metrics blanked, its longer lengths and positions
    dropped), and a sentence saying how many runs that leaves."""
    learned = competent(data.runs)
    keep = set(data.runs.loc[learned, "run_id"])
    ok = int((data.runs["status"] == "ok").sum())
    lengths = data.lengths[data.lengths["in_distribution"] | data.lengths["run_id"].isin(keep)]
    positions = data.positions
    positions = positions[(positions["split"] == "id") | positions["run_id"].isin(keep)]
    runs = tables.competent_extrapolation(data.runs)
    note = (
        f"Beyond the training lengths only competent runs count ({COMPETENCE_TEXT}): "
        f"{len(keep)} of {ok} finished runs."
    )
    return dataclasses.replace(data, runs=runs, lengths=lengths, positions=positions), note


def png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PNG_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attention_examples(data: Study) -> dict[str, dict]:
    """Recorded attention of one run (lowest seed) of the best and of the worst variant among
    runs with attention, ranked by mean OOD exact match over L < length ≤ 2L, then by ID
    exact match, over seeds; titled."""
    ok = ok_runs(data.runs, NEAR_OOD)
    ok = ok[ok[ATTN_SHARPNESS].notna()]
    if ok.empty:
        return {}
    by = tables.config_columns(ok)
    variants = [
        (g[NEAR_OOD].mean(), g[ID_SEQ_ACC].mean(), k, g) for k, g in ok.groupby(by, dropna=False)
    ]
    variants.sort(key=lambda v: v[:2])
    picks = {"best": variants[-1]} | ({"worst": variants[0]} if len(variants) > 1 else {})
    examples = {}
    for label, (ood, _, key, group) in picks.items():
        run = group.sort_values("seed").iloc[0]
        name = " · ".join(f"{c} {v}" for c, v in zip(by, key, strict=True))
        title = f"{label}: {name}\n(mean OOD exact match to 2L {ood:.2f}, seed {run['seed']})"
        maps = load_attention(data.tracking_uri, run["run_id"])
        if maps:
            examples[title] = maps
    return examples
