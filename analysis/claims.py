"""Verdicts on the lecture notes' claims C1..C12: a registry of claims, each with its text,
its rule (fixed before any data is seen), its one primary metric and its check function
(``analysis.rules``). Every rule is decided alike (``DECISION_RULE``): the primary effect's
seed-level interval and p-value (``analysis.effects``), Holm-corrected over the family of
the claims' primary tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import rules
from analysis.aggregate import holm
from analysis.effects import ALPHA, COMPETENT_ID_ACC, FLOAT_TOL, MIN_SEEDS, N_BOOT, Effect
from analysis.rules import Finding, Frames
from analysis.variants import LONG_RANGE_TASKS
from attnstudy.positions import POSITIONS
from attnstudy.scores import SCORES

VERDICTS = ("supported", "refuted", "mixed", "inconclusive")
ABSOLUTE_NAMES = ", ".join(n for n, c in POSITIONS.items() if c.family == "absolute")
RELATIVE_NAMES = ", ".join(  # those shift-invariant with some score: FIRE never is
    n
    for n, c in POSITIONS.items()
    if c.family == "relative" and any(c.shift_invariant(s) for s in SCORES.values())
)
RELATIVE = (
    f"relative encodings ({RELATIVE_NAMES}) in shift-invariant (score, encoding) combinations"
)
ABSOLUTE = f"absolute encodings ({ABSOLUTE_NAMES})"
DECISION_RULE = (
    "Each rule names one primary effect E = A − B. Units are a configuration and a seed; "
    "E is the mean over configurations of the mean over seeds of A − B. Its 95% interval and "
    f"two-sided p-value come from the stratified bootstrap ({N_BOOT:,} resamples of the seeds "
    "within each configuration). Holm's correction is applied over the family of the "
    "claims' primary tests, one per claim that could be tested; secondary metrics are shown "
    f"but never decide. Supported if p (Holm) < {ALPHA} and E has the claimed sign; refuted "
    f"if p (Holm) < {ALPHA} and E has the other sign; mixed otherwise. A configuration "
    f"counts only with {MIN_SEEDS} or more seeds that have runs on both sides; without one "
    "the claim is inconclusive (n = the most seeds a configuration had). "
    "Out-of-distribution comparisons keep only runs that reached in-distribution exact "
    f"match ≥ {COMPETENT_ID_ACC}, on both sides of every unit."
)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    rule: str  # fixed before the data: the primary effect and its claimed sign
    metric: str  # the one primary metric
    sign: int  # +1: the claim predicts E > 0; −1: E < 0
    needs: str  # the runs that test it
    figure: str  # report figure key
    check: Callable[[Frames], Finding]


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict, its primary effect (seed-level 95% CI, n seeds per side, runs
    kept and excluded) and the evidence shown beside it."""

    claim: str
    text: str
    rule: str
    metric: str
    verdict: str  # one of VERDICTS
    effect: Effect
    p_holm: float
    evidence: str  # secondary metrics, shown beside the primary effect
    reason: str  # why inconclusive; "" otherwise
    needs: str
    figure: str

    @property
    def label(self) -> str:
        if self.verdict == "inconclusive":
            return f"inconclusive (n = {self.effect.n_seeds})"
        return self.verdict


CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "C1",
            "A seq2seq RNN that squeezes the input into one context vector struggles with long "
            "inputs, and the earliest input information fades most.",
            "early_minus_late: on copy and reverse, within each training length L, token "
            "accuracy at target positions reproducing the first quarter of the input (relative "
            "input position (i + ½)/L ≤ 0.25) minus the last quarter (≥ 0.75), averaged over "
            "lengths. E = rnn − rnn-attention, same task, width, depth, lr, lengths and seed "
            "(the attention side averaged over its variants); claimed sign negative.",
            "early_minus_late",
            -1,
            "arch rnn and rnn-attention on copy or reverse (presets quick, standard, full)",
            "per_position",
            rules.c1_bottleneck,
        ),
        Claim(
            "C2",
            "Attention removes the context-vector bottleneck: the decoder looks at every input "
            "position at each step.",
            "long_id_seq_acc: exact match over the longer half of the training lengths "
            "(train_max_len/2 < L ≤ train_max_len). E = rnn-attention − rnn, same task, width, "
            "depth, lr, lengths and seed; claimed sign positive. ood_seq_acc (competent pairs) "
            "is shown.",
            "long_id_seq_acc",
            1,
            "arch rnn and rnn-attention (presets quick, standard, full)",
            "rnn",
            rules.c2_attention_removes_bottleneck,
        ),
        Claim(
            "C3",
            "Q/K/V roles are learned from data: attention on copy/reverse finds the expected "
            "(diagonal / anti-diagonal) alignment.",
            "attn_alignment: the best head's attention mass on the expected input position "
            "(copy: the aligned one, reverse: the mirrored one) at target queries. E = "
            "attn_alignment − attn_alignment_uniform (the mass uniform attention over the same "
            "keys would put there), per run; claimed sign positive.",
            "attn_alignment",
            1,
            "attention runs on copy or reverse"
            " (presets quick, standard, replicate-kazemnejad, full)",
            "attention_maps",
            rules.c3_alignment_emerges,
        ),
        Claim(
            "C4",
            "Dot product, cosine similarity, a learned linear map (general) and concatenation "
            "(additive) are four workable ways to score a query against a key.",
            "id_seq_acc. E = per configuration and seed, the lowest in-distribution exact "
            f"match of the four forms dot, cosine, general and additive (all four needed) − "
            f"{COMPETENT_ID_ACC}; claimed sign positive. Per-form means and a Kruskal-Wallis "
            "test of ood_seq_acc are shown.",
            "id_seq_acc",
            1,
            "score functions dot, cosine, general and additive (presets quick, standard, full)",
            "heatmap_score_position",
            rules.c4_score_forms_viable,
        ),
        Claim(
            "C5",
            "Multi-head attention, several readers with their own viewpoints, captures relations "
            "a single head cannot.",
            "head_diversity: mean pairwise Jensen-Shannon divergence between a layer's heads. "
            "E = head_diversity after training − head_diversity_init of the same heads at "
            "initialisation, runs with two or more heads; claimed sign positive. Most minus "
            "fewest heads at one width (id_seq_acc; ood_seq_acc on competent pairs) is shown.",
            "head_diversity",
            1,
            "runs with two or more heads (every preset)",
            "heads",
            rules.c5_heads_diverge,
        ),
        Claim(
            "C6",
            "A Transformer has no notion of order by itself, so it needs positional encodings.",
            "id_seq_acc in the bidirectional encoder (arch encoder), plain positions. E = "
            "position none − the mean over every other encoding, same other configuration and "
            "seed; claimed sign negative. The causal decoder is shown, not deciding (a causal "
            "mask can give order, Kazemnejad et al. 2023).",
            "id_seq_acc",
            -1,
            "arch encoder with position none and other encodings (presets quick, standard, "
            "replicate-deletang, full)",
            "acc_vs_length",
            rules.c6_order_needs_encoding,
        ),
        Claim(
            "C7",
            "Fixed sinusoidal encodings, being a formula, handle sequences longer than any seen "
            "in training.",
            "ood_seq_acc, plain positions, competent runs. E = sinusoidal − the better of "
            "learned and none (all three needed), same other configuration and seed; claimed "
            "sign positive. extrapolation_len − train_max_len and each comparison alone are "
            "shown.",
            "ood_seq_acc",
            1,
            "plain sinusoidal, learned and none"
            " (presets quick, standard, replicate-deletang, full)",
            "acc_vs_length",
            rules.c7_sinusoidal_extrapolates,
        ),
        Claim(
            "C8",
            "Fixed encodings cannot adapt to the data; learnable ones can adapt to the task.",
            "steps_to_95: training steps until validation exact match first reaches 0.95 (a "
            "run that never does counts at the steps it trained), plain positions. E = learned "
            "− sinusoidal, same other configuration and seed; claimed sign negative. "
            "id_seq_acc is shown.",
            "steps_to_95",
            -1,
            "plain learned and sinusoidal (presets quick, standard, replicate-deletang, full)",
            "training_curves",
            rules.c8_learned_adapts,
        ),
        Claim(
            "C9",
            "Learnable absolute encodings cannot generalise past the longest training length.",
            f"ood_seq_acc, plain positions, competent runs. E = learned − the mean of the "
            f"{RELATIVE}, same other configuration and seed; claimed sign negative. "
            "extrapolation_len − train_max_len is shown.",
            "ood_seq_acc",
            -1,
            "plain learned and relative encodings"
            " (presets quick, standard, replicate-deletang, full)",
            "acc_vs_length",
            rules.c9_learned_fails_beyond_training,
        ),
        Claim(
            "C10",
            "Absolute encodings are weaker at relations between tokens and at long-range "
            "dependencies.",
            f"ood_seq_acc on the long-range recall tasks ({', '.join(LONG_RANGE_TASKS)}), "
            f"competent runs. E = mean of the {RELATIVE} − "
            f"mean of the {ABSOLUTE}, same other configuration and seed; claimed sign positive.",
            "ood_seq_acc",
            1,
            f"a long-range task ({' or '.join(LONG_RANGE_TASKS)}) with absolute and relative "
            "encodings (presets standard, full)",
            "acc_vs_length",
            rules.c10_absolute_weaker_long_range,
        ),
        Claim(
            "C11",
            "Relative encodings model relations between tokens more naturally.",
            f"ood_seq_acc over all tasks, competent runs. E = mean of the {RELATIVE} − mean of "
            f"the {ABSOLUTE}, same other configuration and seed; claimed sign positive. "
            "extrapolation_len − train_max_len is shown.",
            "ood_seq_acc",
            1,
            "absolute and relative encodings (every preset)",
            "heatmap_score_position",
            rules.c11_relative_extrapolates_better,
        ),
        Claim(
            "C12",
            "Relative encodings cost more to implement and run.",
            f"step_time_ms. E = mean of the {RELATIVE} − mean of the {ABSOLUTE}, same other "
            "configuration and seed; claimed sign positive. "
            "peak_mem_mb and n_params are shown, not deciding.",
            "step_time_ms",
            1,
            "absolute and relative encodings (every preset)",
            "cost",
            rules.c12_relative_costs_more,
        ),
    )
}


def evaluate_claims(
    runs: pd.DataFrame, lengths: pd.DataFrame, positions: pd.DataFrame
) -> list[Verdict]:
    """Every claim's verdict, in registry order, Holm-corrected over the claims' primary
    tests."""
    frames = Frames.of(runs, lengths, positions)
    findings = [claim.check(frames) for claim in CLAIMS.values()]
    p_holm = holm(np.array([f.effect.p for f in findings], dtype=float))
    return [
        _verdict(claim, finding, p)
        for claim, finding, p in zip(CLAIMS.values(), findings, p_holm, strict=True)
    ]


def decide(effect: Effect, p_holm: float, sign: int) -> str:
    """The verdict of a primary effect with the claimed ``sign`` (see DECISION_RULE)."""
    if not effect.tested:
        return "inconclusive"
    if p_holm < ALPHA and abs(effect.estimate) > FLOAT_TOL:
        return "supported" if np.sign(effect.estimate) == sign else "refuted"
    return "mixed"


def holm_family(verdicts: list[Verdict]) -> str:
    """One sentence naming the tests Holm's correction was applied over."""
    tested = [v.claim for v in verdicts if v.effect.tested]
    names = ", ".join(tested) or "none"
    return (
        f"Holm's correction is applied over the family of the primary tests of the "
        f"{len(tested)} claims that could be tested ({names}), one p-value per claim; "
        "secondary metrics are not in it, and each Statistics table is a family of its own."
    )


def _verdict(claim: Claim, finding: Finding, p_holm: float) -> Verdict:
    effect = finding.effect
    reason = ""
    if not effect.tested:
        reason = f"{effect.reason}; tested by {claim.needs}"
    return Verdict(
        claim=claim.id,
        text=claim.text,
        rule=claim.rule,
        metric=claim.metric,
        verdict=decide(effect, p_holm, claim.sign),
        effect=effect,
        p_holm=float(p_holm),
        evidence=finding.evidence,
        reason=reason,
        needs=claim.needs,
        figure=claim.figure,
    )
