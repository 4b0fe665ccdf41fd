"""The check function of every claim: tidy frames in, the primary effect and the secondary
evidence out. Which runs a side holds is read from what the variant classes declare
(``PositionalEncoding.family`` and ``.shift_invariant(score)``, ``Task.long_range``: the
facts each run logged, ``analysis.variants.fact``), never from a list of names; the names
below are the variants a claim itself is about."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from attnstudy.analysis.aggregate import (
    PAIR_COLUMNS,
    extrapolation_lengths,
    kruskal_p,
    length_trend,
    long_length_accuracy,
    source_position_gap,
)
from attnstudy.analysis.effects import (
    COMPETENCE_METRIC,
    COMPETENT_ID_ACC,
    NEAR_OOD,
    Combine,
    Effect,
    competence_accuracy,
    contrast,
    near_ood_accuracy,
    within_runs,
)
from attnstudy.analysis.variants import fact, flag
from attnstudy.schema import (
    ATTN_ALIGNMENT,
    ATTN_ALIGNMENT_INIT,
    ATTN_ALIGNMENT_UNIFORM,
    ATTN_SHARPNESS,
    ENCODING_FAMILY,
    EXTRAPOLATION_LEN,
    HEAD_DIVERSITY,
    HEAD_DIVERSITY_INIT,
    ID_SEQ_ACC,
    LONG_RANGE,
    N_PARAMS,
    OOD_SEQ_ACC,
    PEAK_MEM_MB,
    SHIFT_INVARIANT,
    STEP_TIME_MS,
    STEPS_TO_95,
    STEPS_TRAINED,
)

SOURCE_MIRRORED = {"copy": False, "reverse": True}  # target i reproduces input i / L − 1 − i
SCORE_FORMS = ("dot", "cosine", "general", "additive")  # Luong et al. 2015's four forms
SAME_BUDGET = ("task", "d_model", "n_layers", "lr", "train_max_len", "eval_max_len", "seed")
LOOSE_THRESHOLD = 0.5  # a second extrapolation length, beside the 0.9 the run logs
MARGIN = "extrapolation_len − train_max_len"
LOOSE_MARGIN = f"the same at exact match {LOOSE_THRESHOLD}"
RNN_STRUGGLES = 0.9  # C1 reads configurations where the plain RNN's exact match at L is below
RECORDED = (  # run metrics the rules read; a study that did not record one reads NaN
    ID_SEQ_ACC,
    OOD_SEQ_ACC,
    NEAR_OOD,
    EXTRAPOLATION_LEN,
    STEPS_TO_95,
    STEPS_TRAINED,
    STEP_TIME_MS,
    PEAK_MEM_MB,
    N_PARAMS,
    ATTN_SHARPNESS,
    ATTN_ALIGNMENT,
    ATTN_ALIGNMENT_UNIFORM,
    ATTN_ALIGNMENT_INIT,
    HEAD_DIVERSITY,
    HEAD_DIVERSITY_INIT,
)


@dataclass(frozen=True)
class Frames:
    """The tidy frames of ``analysis.load``; ``runs`` with the metrics the rules derive.

    ``runs`` holds the points that can solve their task; ``all_runs`` adds those a study
    declared unsolvable by construction (``solvable: false``, e.g. an encoder without
    positions on copy), which only C6, the claim about order itself, reads."""

    runs: pd.DataFrame
    lengths: pd.DataFrame
    positions: pd.DataFrame
    all_runs: pd.DataFrame

    @classmethod
    def of(cls, runs: pd.DataFrame, lengths: pd.DataFrame, positions: pd.DataFrame) -> Frames:
        missing = [m for m in RECORDED if m not in runs]
        runs = with_derived_metrics(
            runs.assign(**dict.fromkeys(missing, np.nan)), lengths, positions
        )
        solvable = runs["solvable"].astype(bool) if "solvable" in runs else slice(None)
        return cls(runs[solvable], lengths, positions, runs)


@dataclass(frozen=True)
class Finding:
    effect: Effect  # of the claim's primary metric
    evidence: str  # secondary metrics: shown, never deciding


def family(runs: pd.DataFrame) -> pd.Series:
    """Each run's encoding family as its class declares it ("unknown" for a name the
    registry lacks)."""
    return fact(runs, ENCODING_FAMILY)


def shift_invariant(runs: pd.DataFrame) -> pd.Series:
    """Whether each run's (score, encoding) combination declares itself shift-invariant."""
    return flag(runs, SHIFT_INVARIANT)


def side_labels(a: pd.Series, b: pd.Series) -> pd.Series:
    """Side "a" where ``a``, "b" where ``b`` (and not ``a``), NaN elsewhere."""
    return pd.Series(np.where(a, "a", np.where(b, "b", None)), index=a.index)


def relative_vs_absolute(runs: pd.DataFrame) -> pd.Series:
    """Side a: relative encodings in shift-invariant combinations; side b: absolute ones."""
    fam = family(runs)
    return side_labels((fam == "relative") & shift_invariant(runs), fam == "absolute")


def pair_on(*axes: str) -> list[str]:
    """The configuration columns and the seed, without the contrasted ``axes``."""
    return [c for c in PAIR_COLUMNS if c not in axes]


def with_derived_metrics(
    runs: pd.DataFrame, lengths: pd.DataFrame, positions: pd.DataFrame
) -> pd.DataFrame:
    """The runs with the metrics the rules derive: early_minus_late (C1), long_id_seq_acc
    (C2, C5), steps_to_95_censored (C8), log_step_time (C12), extrapolation_margin (at 0.9
    and 0.5), and the competence metric and near_ood_seq_acc where the study did not log
    them (read from the per-length frame)."""
    gap = pd.concat(
        [
            source_position_gap(positions[positions["task"] == task], mirrored)
            for task, mirrored in SOURCE_MIRRORED.items()
        ]
    )
    reached = runs[STEPS_TO_95].notna()
    loose = extrapolation_lengths(lengths, LOOSE_THRESHOLD)
    return runs.assign(
        early_minus_late=runs["run_id"].map(gap).astype(float),
        long_id_seq_acc=runs["run_id"].map(long_length_accuracy(lengths)).astype(float),
        extrapolation_margin=runs[EXTRAPOLATION_LEN] - runs["train_max_len"],
        extrapolation_margin_50=runs["run_id"].map(loose).astype(float) - runs["train_max_len"],
        steps_to_95_censored=runs[STEPS_TO_95].where(reached, -runs[STEPS_TRAINED]),
        log_step_time=np.log(runs[STEP_TIME_MS].astype(float)),
        **{
            COMPETENCE_METRIC: competence_accuracy(runs, lengths),
            NEAR_OOD: near_ood_accuracy(runs, lengths),
        },
    )


def plain_position_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose positions are not randomized."""
    return runs[~runs["randomized"].fillna(False).astype(bool)]


def c1_bottleneck(frames: Frames) -> Finding:
    runs = frames.runs
    runs = struggling_rnn_configurations(runs[runs["task"].isin(SOURCE_MIRRORED)])
    side = _levels(runs, "arch", ["rnn"], ["rnn-attention"])
    effect = contrast(runs, side, "early_minus_late", SAME_BUDGET)
    rnn = runs[runs["arch"] == "rnn"]
    alone = within_runs(rnn.assign(zero=0.0), "early_minus_late", "zero", pair_on())
    rho = length_trend(frames.lengths[frames.lengths["run_id"].isin(rnn["run_id"])])
    trend = (
        f"rnn Spearman rho of exact match with length: mean {rho.mean():.3f}, {rho.count()} runs"
    )
    return Finding(effect, f"{alone.text('rnn early_minus_late against 0')}; {trend}")


def struggling_rnn_configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of configurations (task, width, depth, lr, lengths) where the plain RNN's
    mean exact match at its longest training length is below RNN_STRUGGLES."""
    budget = [c for c in SAME_BUDGET if c != "seed"]
    rnn = runs[(runs["arch"] == "rnn") & (runs["status"] == "ok")]
    at_max = rnn.groupby(budget, dropna=False)[COMPETENCE_METRIC].mean()
    struggling = at_max[at_max < RNN_STRUGGLES].index
    return runs[runs.set_index(budget).index.isin(struggling)]


def c2_attention_removes_bottleneck(frames: Frames) -> Finding:
    runs = frames.runs
    side = _levels(runs, "arch", ["rnn-attention"], ["rnn"])
    effect = contrast(runs, side, "long_id_seq_acc", SAME_BUDGET)
    ood = contrast(runs, side, NEAR_OOD, SAME_BUDGET, need_competent=True)
    return Finding(effect, ood.text(f"{NEAR_OOD}, competent pairs") + "; " + ood.exclusions())


def c3_alignment_emerges(frames: Frames) -> Finding:
    runs = frames.runs
    measured = runs.loc[runs[ATTN_ALIGNMENT_UNIFORM].notna(), ["task", "arch"]]
    runs = runs[runs["task"].isin(measured["task"]) & runs["arch"].isin(measured["arch"])]
    effect = within_runs(runs, ATTN_ALIGNMENT, ATTN_ALIGNMENT_INIT, pair_on())
    uniform = within_runs(runs, ATTN_ALIGNMENT, ATTN_ALIGNMENT_UNIFORM, pair_on())
    sharp = runs[ATTN_SHARPNESS].mean()
    return Finding(
        effect,
        f"{uniform.text('trained minus uniform attention')}; attn_sharpness (largest weight, "
        f"not alignment) mean {sharp:.3f}",
    )


def c4_score_forms_viable(frames: Frames) -> Finding:
    runs = frames.runs
    side = runs["score"].where(runs["score"].isin(SCORE_FORMS))

    def weakest_form(wide: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        worst = wide.reindex(columns=list(SCORE_FORMS)).min(axis=1, skipna=False)
        return worst, pd.Series(COMPETENT_ID_ACC, index=wide.index)

    effect = contrast(runs, side, ID_SEQ_ACC, pair_on("score"), combine=weakest_form)
    ok = runs[runs["status"] == "ok"]
    means = ok[ok["score"].isin(SCORE_FORMS)].groupby("score")[ID_SEQ_ACC].mean()
    means = ", ".join(f"{form} {acc:.3f}" for form, acc in means.items()) or "no runs"
    p = kruskal_p(runs, "score", NEAR_OOD)
    return Finding(
        effect,
        f"mean id_seq_acc per form: {means}; Kruskal-Wallis {NEAR_OOD}, all scores p={p:.3g}",
    )


def c5_heads_help(frames: Frames) -> Finding:
    runs = frames.runs
    side = _head_extremes(runs)
    effect = contrast(runs, side, "long_id_seq_acc", pair_on("heads"))
    ood = contrast(runs, side, NEAR_OOD, pair_on("heads"), need_competent=True)
    diversity = within_runs(runs[runs["heads"] > 1], HEAD_DIVERSITY, HEAD_DIVERSITY_INIT, pair_on())
    return Finding(
        effect,
        f"{ood.text(f'most minus fewest heads, {NEAR_OOD} (competent)')}; "
        f"{diversity.text('head diversity, trained minus initial')}",
    )


def c6_order_needs_encoding(frames: Frames) -> Finding:
    runs = plain_position_runs(frames.all_runs)
    fam = family(runs)
    side = side_labels(fam == "none", fam != "none")
    effect, encoder = (
        contrast(runs[runs["arch"] == arch], side, ID_SEQ_ACC, pair_on("position"))
        for arch in ("decoder", "encoder")
    )
    check = encoder.text("bidirectional encoder (unsolvable without positions by construction)")
    return Finding(effect, check)


def c7_sinusoidal_extrapolates(frames: Frames) -> Finding:
    runs = plain_position_runs(frames.runs)
    side = _levels(runs, "position", ["sinusoidal"], ["learned"])
    effect = _across_encodings(runs, side, NEAR_OOD)
    against_none = _levels(runs, "position", ["sinusoidal"], ["none"])
    none = _across_encodings(runs, against_none, NEAR_OOD).text("sinusoidal − none")
    return Finding(effect, f"{_beside(runs, side, 'sinusoidal − learned')}; {none}")


def c8_learned_adapts(frames: Frames) -> Finding:
    runs = plain_position_runs(frames.runs)
    side = _levels(runs, "position", ["learned"], ["sinusoidal"])
    effect = _across_encodings(runs, side, "steps_to_95_censored", False, reached_first_score)
    acc = _across_encodings(runs, side, ID_SEQ_ACC, need_competent=False)
    return Finding(effect, acc.text("id_seq_acc, learned − sinusoidal"))


def reached_first_score(wide: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Gehan's score of each (a, b) unit of ``steps_to_95_censored`` values (positive: the
    step 0.95 was reached; negative: never reached, censored at that many steps): +1 when a
    reached 0.95 later than b, −1 earlier, 0 when censoring hides the order; against 0."""
    a, b = wide.get("a"), wide.get("b")
    if a is None or b is None:
        missing = pd.Series(np.nan, index=wide.index)
        return missing, missing
    a_time, b_time = a.abs(), b.abs()
    a_first = (a > 0) & ((b < 0) & (a_time <= b_time) | (b > 0) & (a_time < b_time))
    b_first = (b > 0) & ((a < 0) & (b_time <= a_time) | (a > 0) & (b_time < a_time))
    score = b_first.astype(float) - a_first.astype(float)
    return score.where(a.notna() & b.notna()), pd.Series(0.0, index=wide.index)


def c9_learned_fails_beyond_training(frames: Frames) -> Finding:
    runs = plain_position_runs(frames.runs)
    fam = family(runs)
    side = side_labels(runs["position"] == "learned", (fam == "relative") & shift_invariant(runs))
    effect = _across_encodings(runs, side, NEAR_OOD)
    return Finding(effect, _beside(runs, side, "learned − relative") + _left_out(runs))


def c10_absolute_weaker_long_range(frames: Frames) -> Finding:
    runs = frames.runs
    return _families(runs[flag(runs, LONG_RANGE)])


def c11_relative_extrapolates_better(frames: Frames) -> Finding:
    return _families(frames.runs)


def c12_relative_costs_more(frames: Frames) -> Finding:
    runs = frames.runs
    side = relative_vs_absolute(runs)
    effect = _across_encodings(runs, side, "log_step_time", need_competent=False)
    shown = [
        _across_encodings(runs, side, m, need_competent=False).text(f"{m} (shown only)")
        for m in (PEAK_MEM_MB, N_PARAMS)
    ]
    return Finding(effect, "; ".join(shown) + _left_out(runs))


def _families(runs: pd.DataFrame) -> Finding:
    """Relative − absolute encodings on near_ood_seq_acc (competent runs)."""
    side = relative_vs_absolute(runs)
    effect = _across_encodings(runs, side, NEAR_OOD)
    return Finding(effect, _beside(runs, side, "relative − absolute") + _left_out(runs))


def _beside(runs: pd.DataFrame, side: pd.Series, contrasted: str) -> str:
    """What an OOD claim shows beside its primary: exact match over every tested length
    beyond training, and the extrapolation margin at exact match 0.9 and 0.5."""
    shown = (
        (OOD_SEQ_ACC, f"ood_seq_acc (every length beyond L), {contrasted}"),
        ("extrapolation_margin", f"{MARGIN}, {contrasted}"),
        ("extrapolation_margin_50", LOOSE_MARGIN),
    )
    return "; ".join(_across_encodings(runs, side, m).text(label) for m, label in shown)


def _across_encodings(
    runs: pd.DataFrame,
    side: pd.Series,
    metric: str,
    need_competent: bool = True,
    combine: Combine | None = None,
) -> Effect:
    """``contrast`` of encodings, paired on every other configuration column and the seed;
    competent runs only unless told otherwise (the out-of-distribution default)."""
    return contrast(runs, side, metric, pair_on("position"), need_competent, combine)


def _levels(runs: pd.DataFrame, column: str, a: list[str], b: list[str]) -> pd.Series:
    return side_labels(runs[column].isin(a), runs[column].isin(b))


def _head_extremes(runs: pd.DataFrame) -> pd.Series:
    """Side a: the most heads, side b: the fewest, for each architecture and d_model run
    with two or more head counts."""
    heads = runs.groupby(["arch", "d_model"])["heads"]
    most, fewest = heads.transform("max"), heads.transform("min")
    varied = most > fewest
    return side_labels(varied & (runs["heads"] == most), varied & (runs["heads"] == fewest))


def _left_out(runs: pd.DataFrame) -> str:
    """Relative runs left out because their combination is not shift-invariant."""
    n = int(((family(runs) == "relative") & ~shift_invariant(runs)).sum())
    return f"; {n} relative runs left out (combination not shift-invariant)" if n else ""
