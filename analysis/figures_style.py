"""How the report's figures draw a variant and name an axis: colours, markers, line styles
and axis labels, the same in every figure.

Every positional encoding and every score function keeps one colour (from seaborn's
colour-blind and dark palettes, in registry order, read when a figure is drawn; a name no
registry holds gets a fallback colour) and one marker; randomized positions are dashed in
their encoding's colour; the architectures without positional encodings (the RNN baselines)
are drawn in black and grey.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import seaborn as sns

from attnstudy.analysis.effects import NEAR_OOD
from attnstudy.analysis.variants import POSITION_NAMES, RANDOMIZED, SCORE_NAMES, variant_order
from attnstudy.schema import (
    ID_SEQ_ACC,
    ID_TOKEN_ACC,
    N_PARAMS,
    OOD_SEQ_ACC,
    OOD_TOKEN_ACC,
    PEAK_MEM_MB,
    STEP_TIME_MS,
    TRAIN_LOSS,
    VAL_SEQ_ACC,
)

MARKER_CYCLE = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")


def distinct_colours(palette: str, n: int) -> list[tuple]:
    """n different colours: the named seaborn palette's own, then evenly spaced hues once it
    runs out (a named palette cycles, which would give an eleventh encoding the first's)."""
    named = list(dict.fromkeys(sns.color_palette(palette)))[:n]
    extra = [c for c in sns.color_palette("husl", 2 * n) if c not in named]
    return named + extra[: n - len(named)]


@cache
def _palette(names: tuple[str, ...], seaborn_palette: str) -> tuple[dict, tuple]:
    """One colour per registered name, and a further one for names no registry holds."""
    colours = distinct_colours(seaborn_palette, len(names) + 1)
    return dict(zip(names, colours[:-1], strict=True)), colours[-1]


def palette() -> tuple[dict[str, tuple], tuple]:
    """Each registered encoding's colour, and the colour of an encoding no registry holds."""
    return _palette(tuple(POSITION_NAMES), "colorblind")


def score_palette() -> tuple[dict[str, tuple], tuple]:
    """Each registered score function's colour, and that of one no registry holds."""
    return _palette(tuple(SCORE_NAMES), "dark")


def _marker(names: Iterable[str], name: str) -> str:
    """The marker of ``name``: the registered names take the cycle's in turn ("o" if none)."""
    names = list(names)
    return MARKER_CYCLE[names.index(name) % len(MARKER_CYCLE)] if name in names else "o"


ARCH_STYLES = {
    "encoder": {"color": "0.55", "linestyle": ":", "marker": "v"},
    "decoder": {"color": "0.55", "linestyle": "-", "marker": "^"},
    "encoder-decoder": {"color": "0.55", "linestyle": "-.", "marker": "D"},
    "rnn": {"color": "black", "linestyle": "-", "marker": "o"},
    "rnn-attention": {"color": "black", "linestyle": "--", "marker": "s"},
}
TRAINED = "training lengths"
MARKS = (TRAINED,)  # legend entries that are not variants; they come last
NO_INTERVAL = "n = 1, no interval"
LABELS = {  # short enough for a panel's side; the panel title says which split it shows
    "seq_acc": "exact match (fraction)",
    "token_acc": "token accuracy (fraction)",
    ID_SEQ_ACC: "ID exact match (fraction)",
    OOD_SEQ_ACC: "OOD exact match (fraction)",
    NEAR_OOD: "exact match (L, 2L] (fraction)",
    ID_TOKEN_ACC: "ID token accuracy (fraction)",
    OOD_TOKEN_ACC: "OOD token accuracy (fraction)",
    "length": "input length (tokens)",
    N_PARAMS: "parameters (count)",
    STEP_TIME_MS: "step time (ms)",
    PEAK_MEM_MB: "activation memory (MB)",
    TRAIN_LOSS: "loss (nats per token)",
    VAL_SEQ_ACC: "exact match (fraction)",
    "step": "training step",
    "id_position": "relative position (i + ½) / target length",
    "ood_position": "output position (0 = first)",
}
CURVE_TITLES = {TRAIN_LOSS: "training loss", VAL_SEQ_ACC: "validation on training lengths"}
TITLES = {ID_SEQ_ACC: "training lengths", NEAR_OOD: "longer than training, up to 2L"}
POSITION_SPLITS = {"id": "training lengths", "ood": "longer than training"}
CI_ALPHA = 0.2


def style(label: str) -> dict:
    """Colour, line style and marker of a variant label (``analysis.variants``): each
    encoding its own colour and marker, dashed when randomized."""
    if label in ARCH_STYLES:
        return dict(ARCH_STYLES[label])
    base = label.removesuffix(RANDOMIZED)
    colours, fallback = palette()
    return {
        "color": colours.get(base, fallback),
        "linestyle": "--" if label.endswith(RANDOMIZED) else "-",
        "marker": _marker(POSITION_NAMES, base),
    }


def score_style(name: str) -> dict:
    """Colour, line style and marker of a score function."""
    colours, fallback = score_palette()
    return {
        "color": colours.get(name, fallback),
        "linestyle": "-",
        "marker": _marker(SCORE_NAMES, name),
    }


def label_style(label: str) -> dict:
    """The style of a line labelled by a score function or by a variant."""
    return score_style(label) if label in SCORE_NAMES else style(label)


def label_order(labels: Iterable[str]) -> list[str]:
    """Score functions in registry order, then variants (``variant_order``)."""
    labels = set(labels)
    scores = [s for s in SCORE_NAMES if s in labels]
    return scores + variant_order(labels - set(scores))


def no_marker(line_kwargs: dict) -> dict:
    return {k: v for k, v in line_kwargs.items() if k != "marker"}


def no_line(line_kwargs: dict) -> dict:
    return {**line_kwargs, "linestyle": "none"}
