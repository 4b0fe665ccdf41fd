"""Verdicts on the lecture notes' claims C1..C12, each computed from the tidy frames by a rule.

Every rule is fixed in ``CLAIMS`` before any data is seen and applied by one short function.
Intervals are 95% percentile-bootstrap intervals from ``analysis.aggregate``; differences
are paired by configuration and seed where the runs allow it (``aggregate.compare``). A CI
"above x" means its lower bound is > x, "below x" that its upper bound is < x. A rule needs at
least ``MIN_RUNS`` runs (or pairs) on every side, otherwise the claim is "not tested".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.aggregate import (
    PAIR_COLUMNS,
    bootstrap_ci,
    compare,
    early_late_gap,
    kruskal_p,
    length_trend,
    ok_runs,
)

MIN_RUNS = 2
ABSOLUTE = ("sinusoidal", "learned")
RELATIVE = ("relative", "t5", "rope", "alibi")
PARAMETER_FREE = ("none", "sinusoidal")
SCORE_FORMS = ("dot", "cosine", "general", "additive")
ALIGNMENT_TASKS = ("copy", "reverse")
VIABLE_ACC = 0.95
EXTRAPOLATES_ACC = 0.5
FLOAT_TOL = 1e-9
SAME_BUDGET = ("task", "d_model", "n_layers", "train_max_len", "eval_max_len", "seed")


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict with the rule that produced it and the numbers behind it."""

    claim: str
    text: str
    verdict: str  # "supported" | "refuted" | "mixed" | "not tested"
    rule: str
    evidence: str
    needs: str  # preset that tests the claim
    figure: str  # report figure key


@dataclass(frozen=True)
class ClaimSpec:
    text: str
    rule: str
    needs: str
    figure: str


CLAIMS: dict[str, ClaimSpec] = {
    "C1": ClaimSpec(
        "A seq2seq RNN that squeezes the input into one context vector struggles with long "
        "inputs, and the earliest input information fades most.",
        "RNN encoder-decoder without attention (arch=rnn). (a) Per run, Spearman rho of "
        "seq_acc with length over all evaluated lengths (0 if accuracy is constant): supported "
        "if the CI of mean rho is below 0, refuted if above 0. (b) Copy task, where target "
        "position i reproduces input i: per run, mean token_acc of the first quarter of target "
        "positions minus the rest: supported if the CI is below 0, refuted if above 0. "
        "Supported if (a) and (b) are supported, refuted if both are refuted, mixed otherwise; "
        "a part without runs is left out.",
        "full",
        "per_position",
    ),
    "C2": ClaimSpec(
        "Attention removes the context-vector bottleneck: the decoder looks at every input "
        "position at each step.",
        "ood_seq_acc of rnn-attention minus rnn, paired on task, d_model, n_layers, lengths and "
        "seed: supported if the CI of the difference is above 0, refuted if below 0, mixed "
        "otherwise.",
        "full",
        "rnn",
    ),
    "C3": ClaimSpec(
        "Q/K/V roles are learned from data: attention on copy/reverse finds the expected "
        "(diagonal / anti-diagonal) alignment.",
        "attn_sharpness of attention runs on copy and reverse minus the uniform baseline, the "
        "mean of 1/L over L = 1..train_max_len (the weight uniform attention would put on the "
        "aligned position, averaged over training lengths; conservative, as it exceeds "
        "1/train_max_len): supported if the CI of the mean excess is above 0, refuted if below "
        "0, mixed otherwise.",
        "replicate-kazemnejad",
        "attention_maps",
    ),
    "C4": ClaimSpec(
        "Dot product, cosine similarity, a learned linear map (general) and concatenation "
        "(additive) are four workable ways to score a query against a key.",
        f"A form is viable if the CI of its mean id_seq_acc is above {VIABLE_ACC}, not viable "
        f"if below {VIABLE_ACC}. Supported if all four forms are viable, refuted if none is, "
        "mixed otherwise; not tested unless all four have runs. Extrapolation (ood_seq_acc, "
        "with a Kruskal-Wallis test across all score functions) is reported as evidence only.",
        "full",
        "heatmap_score_position",
    ),
    "C5": ClaimSpec(
        "Multi-head attention, several readers with their own viewpoints, captures relations "
        "a single head cannot.",
        "At each d_model with two or more head counts, most heads minus fewest heads, paired on "
        "all other config and seed, on ood_seq_acc and id_seq_acc. Performance is supported if "
        "one difference's CI is above 0 and neither is below 0, refuted if one is below 0 and "
        "neither above, mixed otherwise. The claim takes the performance verdict, except that "
        "supported needs the CI of head_diversity of multi-head runs above 0 (else mixed; "
        "ignored if never measured).",
        "full",
        "heads",
    ),
    "C6": ClaimSpec(
        "A Transformer has no notion of order by itself, so it needs positional encodings.",
        "id_seq_acc of position=none minus the mean over the other encodings, paired on other "
        "config and seed, separately in the bidirectional encoder and the causal decoder; a "
        "setting supports the claim if the CI is below 0 and refutes it if above 0. Supported "
        "if the encoder supports it and the decoder does too (or has no runs); mixed if only "
        "the encoder supports it (a causal mask can give order, Kazemnejad et al. 2023); "
        "refuted if the encoder refutes it; mixed otherwise. Without encoder runs the decoder "
        "verdict is used.",
        "replicate-deletang, replicate-kazemnejad",
        "acc_vs_length",
    ),
    "C7": ClaimSpec(
        "Fixed sinusoidal encodings, being a formula, handle sequences longer than any seen "
        "in training.",
        f"ood_seq_acc of non-randomized sinusoidal runs: supported if the CI of the mean is "
        f"above {EXTRAPOLATES_ACC}, refuted if below {EXTRAPOLATES_ACC}, mixed otherwise.",
        "quick",
        "acc_vs_length",
    ),
    "C8": ClaimSpec(
        "Fixed encodings cannot adapt to the data; learnable ones can adapt to the task.",
        "learned minus sinusoidal (non-randomized), paired on other config and seed: "
        "id_seq_acc (supports if the CI is above 0, refutes if below) and steps_to_95 over "
        "runs that reached 95% (supports if below 0, refutes if above). Supported if one part "
        "supports and none refutes, refuted if one refutes and none supports, mixed otherwise.",
        "quick",
        "acc_vs_length",
    ),
    "C9": ClaimSpec(
        "Learnable absolute encodings cannot generalise past the longest training length.",
        f"ood_seq_acc of non-randomized learned runs: supported if the CI of the mean is below "
        f"{EXTRAPOLATES_ACC}, refuted if above {EXTRAPOLATES_ACC}, mixed otherwise.",
        "quick",
        "acc_vs_length",
    ),
    "C10": ClaimSpec(
        "Absolute encodings are weaker at relations between tokens and at long-range dependencies.",
        "On associative_recall, ood_seq_acc of relative encodings (relative, t5, rope, alibi) "
        "minus absolute ones (sinusoidal, learned), each side averaged per config and seed, "
        "then paired: supported if the CI is above 0, refuted if below 0, mixed otherwise.",
        "full",
        "acc_vs_length",
    ),
    "C11": ClaimSpec(
        "Relative encodings model relations between tokens more naturally.",
        "Over all tasks, ood_seq_acc of relative encodings (relative, t5, rope, alibi) minus "
        "absolute ones (sinusoidal, learned), each side averaged per config and seed, then "
        "paired: supported if the CI is above 0, refuted if below 0, mixed otherwise.",
        "replicate-kazemnejad",
        "heatmap_score_position",
    ),
    "C12": ClaimSpec(
        "Relative encodings cost more to implement and run.",
        "Relative encodings (relative, t5, rope, alibi) minus the parameter-free absolute "
        "baselines (none, sinusoidal), paired on other config and seed, on step_time_ms, "
        "peak_mem_mb and n_params: a part supports if its CI is above 0 and refutes if below "
        "0. Supported if one part supports and none refutes, refuted if one refutes and none "
        "supports, mixed otherwise.",
        "quick",
        "cost",
    ),
}


def ci_verdict(low: float, high: float, threshold: float = 0.0, above: bool = True) -> str:
    """Verdict of a CI against ``threshold``: the claimed side is above it when ``above``.

    Supported if the whole CI is strictly on the claimed side, refuted if strictly on the
    other, mixed if it contains the threshold (within FLOAT_TOL, so rounding error in a zero
    difference is no evidence), not tested if the CI is undefined.
    """
    if np.isnan(low) or np.isnan(high):
        return "not tested"
    if low > threshold + FLOAT_TOL:
        return "supported" if above else "refuted"
    if high < threshold - FLOAT_TOL:
        return "refuted" if above else "supported"
    return "mixed"


def combine_all(parts: Sequence[str]) -> str:
    """All tested parts supported -> supported; all refuted -> refuted; else mixed."""
    tested = {p for p in parts if p != "not tested"}
    if not tested:
        return "not tested"
    return tested.pop() if tested in ({"supported"}, {"refuted"}) else "mixed"


def combine_any(parts: Sequence[str]) -> str:
    """Some tested part supported and none refuted -> supported (refuted mirrored); else mixed."""
    tested = {p for p in parts if p != "not tested"}
    if not tested:
        return "not tested"
    if "supported" in tested and "refuted" not in tested:
        return "supported"
    if "refuted" in tested and "supported" not in tested:
        return "refuted"
    return "mixed"


def evaluate_claims(
    runs: pd.DataFrame, lengths: pd.DataFrame, positions: pd.DataFrame
) -> list[Verdict]:
    """Apply every claim's rule to the tidy frames, in order C1..C12."""
    return [
        c1_bottleneck(runs, lengths, positions),
        c2_attention_removes_bottleneck(runs),
        c3_alignment_emerges(runs),
        c4_score_forms_viable(runs),
        c5_heads_help(runs),
        c6_order_needs_encoding(runs),
        c7_sinusoidal_extrapolates(runs),
        c8_learned_adapts(runs),
        c9_learned_fails_beyond_training(runs),
        c10_absolute_weaker_long_range(runs),
        c11_relative_extrapolates_better(runs),
        c12_relative_costs_more(runs),
    ]


def c1_bottleneck(runs: pd.DataFrame, lengths: pd.DataFrame, positions: pd.DataFrame) -> Verdict:
    """C1 by the Spearman length trend and the early-vs-late target position gap of rnn runs."""
    ok = ok_runs(runs)
    rnn = ok[ok["arch"] == "rnn"]
    trend = length_trend(lengths[lengths["run_id"].isin(rnn["run_id"])])
    copy_ids = rnn.loc[rnn["task"] == "copy", "run_id"]
    gap = early_late_gap(positions[positions["run_id"].isin(copy_ids)])
    trend_verdict, trend_text = _mean_verdict(trend, 0.0, above=False)
    gap_verdict, gap_text = _mean_verdict(gap, 0.0, above=False)
    evidence = f"length rho {trend_text}; copy early-minus-late token_acc {gap_text}"
    return _verdict("C1", combine_all([trend_verdict, gap_verdict]), evidence)


def c2_attention_removes_bottleneck(runs: pd.DataFrame) -> Verdict:
    """C2 by the paired ood_seq_acc difference rnn-attention − rnn."""
    result = _contrast(runs, "arch", ["rnn-attention"], ["rnn"], "ood_seq_acc", SAME_BUDGET)
    return _verdict("C2", _diff_verdict(result), _diff_text("ood_seq_acc", result))


def c3_alignment_emerges(runs: pd.DataFrame) -> Verdict:
    """C3 by attention sharpness above the uniform-attention baseline on copy and reverse."""
    runs = ok_runs(runs, "attn_sharpness")
    runs = runs[runs["task"].isin(ALIGNMENT_TASKS)]
    excess = runs["attn_sharpness"] - runs["train_max_len"].map(_uniform_weight)
    verdict, text = _mean_verdict(excess, 0.0)
    sharpness = runs["attn_sharpness"].mean()
    return _verdict("C3", verdict, f"sharpness {sharpness:.3f}; excess over uniform {text}")


def c4_score_forms_viable(runs: pd.DataFrame) -> Verdict:
    """C4 by a per-form CI test of mean id_seq_acc against VIABLE_ACC."""
    parts, texts = [], []
    ok = ok_runs(runs)
    for form in SCORE_FORMS:
        form_runs = ok[ok["score"] == form]
        part, text = _mean_verdict(form_runs["id_seq_acc"], VIABLE_ACC)
        ood = form_runs["ood_seq_acc"].mean()
        parts.append(part)
        texts.append(f"{form}: id {text}, ood mean {ood:.3f}")
    p = kruskal_p(runs, "score", "ood_seq_acc")
    evidence = "; ".join(texts) + f"; Kruskal-Wallis ood_seq_acc p={p:.3g}"
    verdict = "not tested" if "not tested" in parts else combine_all(parts)
    return _verdict("C4", verdict, evidence)


def c5_heads_help(runs: pd.DataFrame) -> Verdict:
    """C5 by paired most-vs-fewest-heads differences and head diversity of multi-head runs."""
    tagged = _tag_head_extremes(ok_runs(runs))
    pair_on = [c for c in PAIR_COLUMNS if c != "heads"]
    results = {
        m: _contrast(tagged, "head_group", ["most"], ["fewest"], m, pair_on)
        for m in ("ood_seq_acc", "id_seq_acc")
    }
    performance = combine_any([_diff_verdict(r) for r in results.values()])
    diversity, diversity_text = _mean_verdict(
        ok_runs(runs, "head_diversity").query("heads > 1")["head_diversity"], 0.0
    )
    mixed = performance == "supported" and diversity in ("mixed", "refuted")
    texts = [_diff_text(m, r) for m, r in results.items()]
    evidence = "; ".join([*texts, f"head_diversity {diversity_text}"])
    return _verdict("C5", "mixed" if mixed else performance, evidence)


def c6_order_needs_encoding(runs: pd.DataFrame) -> Verdict:
    """C6 by paired none-vs-other-encodings id_seq_acc in the encoder and in the decoder."""
    others = sorted(set(runs["position"].dropna()) - {"none"})
    results = {
        arch: _contrast(runs[runs["arch"] == arch], "position", ["none"], others, "id_seq_acc")
        for arch in ("encoder", "decoder")
    }
    encoder, decoder = (_diff_verdict(r, above=False) for r in results.values())
    if encoder == "not tested":
        verdict = decoder
    elif encoder == "supported":
        verdict = "supported" if decoder in ("supported", "not tested") else "mixed"
    else:
        verdict = "refuted" if encoder == "refuted" else "mixed"
    evidence = "; ".join(_diff_text(f"{a} none-minus-others", r) for a, r in results.items())
    return _verdict("C6", verdict, evidence)


def c7_sinusoidal_extrapolates(runs: pd.DataFrame) -> Verdict:
    """C7 by the CI of mean ood_seq_acc of sinusoidal runs against EXTRAPOLATES_ACC."""
    verdict, text = _mean_verdict(_fixed_position(runs, "sinusoidal"), EXTRAPOLATES_ACC)
    return _verdict("C7", verdict, f"sinusoidal ood_seq_acc {text}")


def c8_learned_adapts(runs: pd.DataFrame) -> Verdict:
    """C8 by paired learned − sinusoidal id_seq_acc (higher) and steps_to_95 (lower)."""
    runs = runs[~runs["randomized"].astype(bool)]
    acc = _contrast(runs, "position", ["learned"], ["sinusoidal"], "id_seq_acc")
    steps = _contrast(runs, "position", ["learned"], ["sinusoidal"], "steps_to_95")
    verdict = combine_any([_diff_verdict(acc), _diff_verdict(steps, above=False)])
    evidence = f"{_diff_text('id_seq_acc', acc)}; {_diff_text('steps_to_95', steps)}"
    return _verdict("C8", verdict, evidence)


def c9_learned_fails_beyond_training(runs: pd.DataFrame) -> Verdict:
    """C9 by the CI of mean ood_seq_acc of learned runs below EXTRAPOLATES_ACC."""
    verdict, text = _mean_verdict(_fixed_position(runs, "learned"), EXTRAPOLATES_ACC, above=False)
    return _verdict("C9", verdict, f"learned ood_seq_acc {text}")


def c10_absolute_weaker_long_range(runs: pd.DataFrame) -> Verdict:
    """C10 by paired relative − absolute ood_seq_acc on associative recall."""
    recall = runs[runs["task"] == "associative_recall"]
    result = _contrast(recall, "position", RELATIVE, ABSOLUTE, "ood_seq_acc")
    evidence = _diff_text("associative_recall ood_seq_acc relative-minus-absolute", result)
    return _verdict("C10", _diff_verdict(result), evidence)


def c11_relative_extrapolates_better(runs: pd.DataFrame) -> Verdict:
    """C11 by paired relative − absolute ood_seq_acc over all tasks."""
    result = _contrast(runs, "position", RELATIVE, ABSOLUTE, "ood_seq_acc")
    evidence = _diff_text("ood_seq_acc relative-minus-absolute", result)
    return _verdict("C11", _diff_verdict(result), evidence)


def c12_relative_costs_more(runs: pd.DataFrame) -> Verdict:
    """C12 by paired relative − parameter-free step time, peak memory and parameter count."""
    metrics = ("step_time_ms", "peak_mem_mb", "n_params")
    results = {m: _contrast(runs, "position", RELATIVE, PARAMETER_FREE, m) for m in metrics}
    verdict = combine_any([_diff_verdict(r) for r in results.values()])
    evidence = "; ".join(_diff_text(m, r) for m, r in results.items())
    return _verdict("C12", verdict, evidence)


def _verdict(claim: str, verdict: str, evidence: str) -> Verdict:
    spec = CLAIMS[claim]
    return Verdict(claim, spec.text, verdict, spec.rule, evidence, spec.needs, spec.figure)


def _mean_verdict(values: pd.Series, threshold: float, above: bool = True) -> tuple[str, str]:
    """CI verdict of the mean of ``values`` and its evidence text; needs MIN_RUNS values."""
    x = values.dropna().to_numpy(float)
    if len(x) < MIN_RUNS:
        return "not tested", f"n={len(x)} (needs {MIN_RUNS})"
    low, high = bootstrap_ci(x)
    text = f"{x.mean():.3f} [{low:.3f}, {high:.3f}] n={len(x)}"
    return ci_verdict(low, high, threshold, above), text


def _contrast(
    runs: pd.DataFrame,
    axis: str,
    a_levels: Sequence[str],
    b_levels: Sequence[str],
    metric: str,
    pair_on: Sequence[str] | None = None,
) -> dict[str, object]:
    """``aggregate.compare`` of runs at ``a_levels`` vs ``b_levels`` of ``axis``, paired on
    ``pair_on`` (default: every other config column and the seed)."""
    keys = [c for c in (PAIR_COLUMNS if pair_on is None else pair_on) if c != axis]
    a, b = runs[runs[axis].isin(a_levels)], runs[runs[axis].isin(b_levels)]
    return compare(a, b, metric, keys)


def _diff_verdict(result: dict[str, object], above: bool = True) -> str:
    """CI verdict of a difference against 0; not tested below MIN_RUNS runs or pairs a side."""
    n = result["n_pairs"] if result["paired"] else min(result["n_a"], result["n_b"])
    if n < MIN_RUNS:
        return "not tested"
    return ci_verdict(result["diff_ci_low"], result["diff_ci_high"], 0.0, above)


def _diff_text(label: str, r: dict[str, object]) -> str:
    n = f"{r['n_pairs']} pairs" if r["paired"] else f"n={r['n_a']}+{r['n_b']}"
    return (
        f"{label}: {r['mean_a']:.3f} vs {r['mean_b']:.3f}, diff {r['mean_diff']:+.3f} "
        f"[{r['diff_ci_low']:.3f}, {r['diff_ci_high']:.3f}], {r['test']} p={r['p']:.3g}, {n}"
    )


def _fixed_position(runs: pd.DataFrame, position: str) -> pd.Series:
    """ood_seq_acc of ok, non-randomized runs with the given positional encoding."""
    ok = ok_runs(runs, "ood_seq_acc")
    return ok.loc[(ok["position"] == position) & ~ok["randomized"].astype(bool), "ood_seq_acc"]


def _tag_head_extremes(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with the most or fewest heads at each d_model that has two or more head counts,
    tagged in a ``head_group`` column ("most" / "fewest")."""
    heads = runs.groupby("d_model")["heads"]
    most, fewest = heads.transform("max"), heads.transform("min")
    group = np.where(runs["heads"] == most, "most", np.where(runs["heads"] == fewest, "fewest", ""))
    tagged = runs.assign(head_group=group)
    return tagged[(most > fewest) & (tagged["head_group"] != "")]


def _uniform_weight(train_max_len: int) -> float:
    """Mean of 1/L over L = 1..train_max_len: uniform attention's weight on one position."""
    return float(np.mean(1.0 / np.arange(1, train_max_len + 1)))
