"""The check function of every claim: tidy frames in, the primary effect and the secondary
evidence out. Which runs a side holds is read from the variant classes on main
(``POSITIONS[name].family`` and ``.shift_invariant(score)``), never from a list of names;
the names below are the variants a claim itself is about."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.aggregate import (
    PAIR_COLUMNS,
    kruskal_p,
    length_trend,
    long_length_accuracy,
    source_position_gap,
)
from analysis.effects import COMPETENT_ID_ACC, Combine, Effect, contrast, within_runs
from analysis.variants import LONG_RANGE_TASKS
from attnstudy.positions import POSITIONS
from attnstudy.scores import SCORES

SOURCE_MIRRORED = {"copy": False, "reverse": True}  # target i reproduces input i / L − 1 − i
SCORE_FORMS = ("dot", "cosine", "general", "additive")  # Luong et al. 2015's four forms
SAME_BUDGET = ("task", "d_model", "n_layers", "lr", "train_max_len", "eval_max_len", "seed")
MARGIN = "extrapolation_len − train_max_len"
RECORDED = (  # run metrics the rules read; a study that did not record one reads NaN
    "id_seq_acc",
    "ood_seq_acc",
    "extrapolation_len",
    "steps_to_95",
    "steps_trained",
    "step_time_ms",
    "peak_mem_mb",
    "n_params",
    "attn_sharpness",
    "attn_alignment",
    "attn_alignment_uniform",
    "head_diversity",
    "head_diversity_init",
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
        runs = derive(runs.assign(**dict.fromkeys(missing, np.nan)), lengths, positions)
        solvable = runs["solvable"].astype(bool) if "solvable" in runs else slice(None)
        return cls(runs[solvable], lengths, positions, runs)


@dataclass(frozen=True)
class Finding:
    effect: Effect  # of the claim's primary metric
    evidence: str  # secondary metrics: shown, never deciding


def family(runs: pd.DataFrame) -> pd.Series:
    """Each run's encoding family as its class declares it ("unknown" for a name the
    registry lacks)."""
    return runs["position"].map(lambda p: getattr(POSITIONS.get(p), "family", "unknown"))


def shift_invariant(runs: pd.DataFrame) -> pd.Series:
    """Whether each run's (score, encoding) combination declares itself shift-invariant."""
    pairs = zip(runs["position"], runs["score"], strict=True)
    flags = [p in POSITIONS and POSITIONS[p].shift_invariant(SCORES.get(s)) for p, s in pairs]
    return pd.Series(flags, index=runs.index, dtype=bool)


def sides(a: pd.Series, b: pd.Series) -> pd.Series:
    """Side "a" where ``a``, "b" where ``b`` (and not ``a``), NaN elsewhere."""
    return pd.Series(np.where(a, "a", np.where(b, "b", None)), index=a.index)


def relative_vs_absolute(runs: pd.DataFrame) -> pd.Series:
    """Side a: relative encodings in shift-invariant combinations; side b: absolute ones."""
    fam = family(runs)
    return sides((fam == "relative") & shift_invariant(runs), fam == "absolute")


def pair_on(*axes: str) -> list[str]:
    """The configuration columns and the seed, without the contrasted ``axes``."""
    return [c for c in PAIR_COLUMNS if c not in axes]


def derive(runs: pd.DataFrame, lengths: pd.DataFrame, positions: pd.DataFrame) -> pd.DataFrame:
    """The runs with the metrics the rules derive: early_minus_late (C1), long_id_seq_acc
    (C2), extrapolation_margin and steps_to_95_or_trained (C8)."""
    gap = pd.concat(
        [
            source_position_gap(positions[positions["task"] == task], mirrored)
            for task, mirrored in SOURCE_MIRRORED.items()
        ]
    )
    return runs.assign(
        early_minus_late=runs["run_id"].map(gap).astype(float),
        long_id_seq_acc=runs["run_id"].map(long_length_accuracy(lengths)).astype(float),
        extrapolation_margin=runs["extrapolation_len"] - runs["train_max_len"],
        steps_to_95_or_trained=runs["steps_to_95"].fillna(runs["steps_trained"]),
    )


def plain(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[~runs["randomized"].fillna(False).astype(bool)]


def c1_bottleneck(frames: Frames) -> Finding:
    runs = frames.runs
    runs = runs[runs["task"].isin(SOURCE_MIRRORED)]
    side = _levels(runs, "arch", ["rnn"], ["rnn-attention"])
    effect = contrast(runs, side, "early_minus_late", SAME_BUDGET)
    rnn = runs[runs["arch"] == "rnn"]
    alone = within_runs(rnn.assign(zero=0.0), "early_minus_late", "zero", pair_on())
    rho = length_trend(frames.lengths[frames.lengths["run_id"].isin(rnn["run_id"])])
    trend = (
        f"rnn Spearman rho of exact match with length: mean {rho.mean():.3f}, {rho.count()} runs"
    )
    return Finding(effect, f"{alone.text('rnn early_minus_late against 0')}; {trend}")


def c2_attention_removes_bottleneck(frames: Frames) -> Finding:
    runs = frames.runs
    side = _levels(runs, "arch", ["rnn-attention"], ["rnn"])
    effect = contrast(runs, side, "long_id_seq_acc", SAME_BUDGET)
    ood = contrast(runs, side, "ood_seq_acc", SAME_BUDGET, competent=True)
    return Finding(effect, ood.text("ood_seq_acc, competent pairs") + "; " + ood.exclusions())


def c3_alignment_emerges(frames: Frames) -> Finding:
    runs = frames.runs
    measured = runs.loc[runs["attn_alignment_uniform"].notna(), ["task", "arch"]]
    runs = runs[runs["task"].isin(measured["task"]) & runs["arch"].isin(measured["arch"])]
    effect = within_runs(runs, "attn_alignment", "attn_alignment_uniform", pair_on())
    sharp = runs["attn_sharpness"].mean()
    return Finding(effect, f"attn_sharpness (largest weight, not alignment) mean {sharp:.3f}")


def c4_score_forms_viable(frames: Frames) -> Finding:
    runs = frames.runs
    side = runs["score"].where(runs["score"].isin(SCORE_FORMS))

    def weakest_form(wide: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        worst = wide.reindex(columns=list(SCORE_FORMS)).min(axis=1, skipna=False)
        return worst, pd.Series(COMPETENT_ID_ACC, index=wide.index)

    effect = contrast(runs, side, "id_seq_acc", pair_on("score"), combine=weakest_form)
    ok = runs[runs["status"] == "ok"]
    means = ok[ok["score"].isin(SCORE_FORMS)].groupby("score")["id_seq_acc"].mean()
    means = ", ".join(f"{form} {acc:.3f}" for form, acc in means.items()) or "no runs"
    p = kruskal_p(runs, "score", "ood_seq_acc")
    return Finding(
        effect,
        f"mean id_seq_acc per form: {means}; Kruskal-Wallis ood_seq_acc, all scores p={p:.3g}",
    )


def c5_heads_diverge(frames: Frames) -> Finding:
    runs = frames.runs
    effect = within_runs(
        runs[runs["heads"] > 1], "head_diversity", "head_diversity_init", pair_on()
    )
    side = _head_extremes(runs)
    texts = [
        contrast(runs, side, m, pair_on("heads"), competent=m.startswith("ood")).text(
            f"most minus fewest heads at one width, {m}"
        )
        for m in ("id_seq_acc", "ood_seq_acc")
    ]
    return Finding(effect, "; ".join(texts))


def c6_order_needs_encoding(frames: Frames) -> Finding:
    runs = plain(frames.all_runs)
    fam = family(runs)
    side = sides(fam == "none", fam != "none")
    effect, decoder = (
        contrast(runs[runs["arch"] == arch], side, "id_seq_acc", pair_on("position"))
        for arch in ("encoder", "decoder")
    )
    return Finding(effect, decoder.text("causal decoder, none minus other encodings"))


def c7_sinusoidal_extrapolates(frames: Frames) -> Finding:
    runs = plain(frames.runs)
    side = runs["position"].where(runs["position"].isin(("sinusoidal", "learned", "none")))

    def against_best(wide: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        wide = wide.reindex(columns=["sinusoidal", "learned", "none"])
        return wide["sinusoidal"], wide[["learned", "none"]].max(axis=1, skipna=False)

    effect = _across_encodings(runs, side, "ood_seq_acc", True, against_best)
    margin = _across_encodings(runs, side, "extrapolation_margin", True, against_best)
    texts = [margin.text("extrapolation_len − train_max_len, same units")]
    for other in ("learned", "none"):
        alone = _levels(runs, "position", ["sinusoidal"], [other])
        texts.append(_across_encodings(runs, alone, "ood_seq_acc").text(f"sinusoidal − {other}"))
    return Finding(effect, "; ".join(texts))


def c8_learned_adapts(frames: Frames) -> Finding:
    runs = plain(frames.runs)
    side = _levels(runs, "position", ["learned"], ["sinusoidal"])
    effect = _across_encodings(runs, side, "steps_to_95_or_trained", competent=False)
    acc = _across_encodings(runs, side, "id_seq_acc", competent=False)
    return Finding(effect, acc.text("id_seq_acc, learned − sinusoidal"))


def c9_learned_fails_beyond_training(frames: Frames) -> Finding:
    runs = plain(frames.runs)
    fam = family(runs)
    side = sides(runs["position"] == "learned", (fam == "relative") & shift_invariant(runs))
    effect = _across_encodings(runs, side, "ood_seq_acc")
    margin = _across_encodings(runs, side, "extrapolation_margin")
    return Finding(effect, margin.text(f"{MARGIN}, learned − relative") + _left_out(runs))


def c10_absolute_weaker_long_range(frames: Frames) -> Finding:
    runs = frames.runs
    return _families(runs[runs["task"].isin(LONG_RANGE_TASKS)])


def c11_relative_extrapolates_better(frames: Frames) -> Finding:
    return _families(frames.runs)


def c12_relative_costs_more(frames: Frames) -> Finding:
    runs = frames.runs
    side = relative_vs_absolute(runs)
    effect = _across_encodings(runs, side, "step_time_ms", competent=False)
    shown = [
        _across_encodings(runs, side, m, competent=False).text(f"{m} (shown only)")
        for m in ("peak_mem_mb", "n_params")
    ]
    return Finding(effect, "; ".join(shown) + _left_out(runs))


def _families(runs: pd.DataFrame) -> Finding:
    """Relative − absolute encodings on ood_seq_acc (competent runs), the margin shown."""
    side = relative_vs_absolute(runs)
    effect = _across_encodings(runs, side, "ood_seq_acc")
    margin = _across_encodings(runs, side, "extrapolation_margin")
    return Finding(effect, margin.text(f"{MARGIN}, relative − absolute") + _left_out(runs))


def _across_encodings(
    runs: pd.DataFrame,
    side: pd.Series,
    metric: str,
    competent: bool = True,
    combine: Combine | None = None,
) -> Effect:
    """``contrast`` of encodings, paired on every other configuration column and the seed;
    competent runs only unless told otherwise (the out-of-distribution default)."""
    return contrast(runs, side, metric, pair_on("position"), competent, combine)


def _levels(runs: pd.DataFrame, column: str, a: list[str], b: list[str]) -> pd.Series:
    return sides(runs[column].isin(a), runs[column].isin(b))


def _head_extremes(runs: pd.DataFrame) -> pd.Series:
    """Side a: the most heads, side b: the fewest, for each architecture and d_model run
    with two or more head counts."""
    heads = runs.groupby(["arch", "d_model"])["heads"]
    most, fewest = heads.transform("max"), heads.transform("min")
    varied = most > fewest
    return sides(varied & (runs["heads"] == most), varied & (runs["heads"] == fewest))


def _left_out(runs: pd.DataFrame) -> str:
    """Relative runs left out because their combination is not shift-invariant."""
    n = int(((family(runs) == "relative") & ~shift_invariant(runs)).sum())
    return f"; {n} relative runs left out (combination not shift-invariant)" if n else ""
