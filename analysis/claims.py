"""Verdicts on the lecture notes' claims C1..C12: a registry of claims, each with its text,
its rule (fixed before any data is seen), its one primary metric and its check function
(``analysis.rules``), and its smallest effect of interest with the reason for its size. Every
rule is decided alike (``DECISION_RULE``): the primary effect's seed-level interval, exact
sign-flip p (``analysis.effects``), Holm-corrected over the family of the claims' primary
tests, and an equivalence test against the smallest effect."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import rules
from analysis.aggregate import holm
from analysis.effects import (
    ALPHA,
    COMPETENT_ID_ACC,
    FLOAT_TOL,
    MIN_SEEDS,
    N_BOOT,
    Effect,
    equivalence_p,
    seeds_needed,
)
from analysis.rules import Finding, Frames
from analysis.variants import LONG_RANGE_TASKS
from attnstudy.positions import POSITIONS
from attnstudy.scores import SCORES

VERDICTS = ("supported", "refuted", "no meaningful difference", "inconclusive")
RULE_VERSION = 2
RULE_CHANGES = {  # version: what changed, so a record names the rules it was decided by
    1: "Stratified bootstrap p over seeds within configurations; verdicts supported, refuted, "
    "mixed, inconclusive; competence = mean in-distribution exact match ≥ 0.95.",
    2: "Seeds are the unit: each seed reduced to its mean difference over configurations, "
    "exact sign-flip test, bootstrap over seed ids, smallest p printed; a smallest effect of "
    "interest per claim and an equivalence test (no meaningful difference); competence = exact "
    "match at the longest training length ≥ 0.95; C1 on copy and reverse where the plain RNN "
    "misses the longest training length; C3 against the same statistic at initialisation; C5 "
    "most vs fewest heads on long-length exact match; C6 in the causal decoder; C7 against "
    "learned; C8 with runs that never reach 0.95 censored; C12 on log step time.",
}
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
    "Each rule names one primary effect E = A − B, a smallest effect of interest Δ and a "
    "claimed sign. The seed is the unit: a unit is a configuration and a seed, and each seed "
    "is reduced to one number, its mean A − B over the configurations it ran (seed s draws "
    "the same batches and examples in every configuration, so configurations are not "
    "independent replicates). E is the mean of those per-seed differences; its two-sided p "
    "comes from the exact sign-flip permutation test over seeds (all 2^n sign patterns; the "
    "smallest p n seeds allow, 2/2^n, is printed beside it) and its 95% interval from "
    f"{N_BOOT:,} bootstrap resamples of seed ids, each drawn seed bringing all its "
    "configurations. Holm's correction is applied over the family of the claims' primary "
    "tests, one per claim that could be tested; secondary metrics are shown but never decide. "
    f"**Supported** if p (Holm) < {ALPHA} and E has the claimed sign; **refuted** if p (Holm) "
    f"< {ALPHA} and E has the other sign; **no meaningful difference** if not and two "
    f"one-sided sign-flip tests (TOST, each at {ALPHA}) show E within ± Δ; **inconclusive** "
    "otherwise, with about how many seeds would decide it (enough for the test to reach "
    "Holm's first step and for 80% power at Δ given the seeds' spread). A claim needs "
    f"{MIN_SEEDS} or more seeds with runs on both sides to be tested at all. "
    "Out-of-distribution comparisons keep only competent runs (exact match at the longest "
    f"training length ≥ {COMPETENT_ID_ACC}), on both sides of every unit. The error rate of "
    "this procedure is checked by simulation under the null in the test suite "
    "(tests/test_inference.py)."
)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    rule: str  # fixed before the data: the primary effect and its claimed sign
    metric: str  # the one primary metric
    sign: int  # +1: the claim predicts E > 0; −1: E < 0
    smallest_effect: float  # Δ: the smallest |E| that matters, in the metric's units
    why_smallest: str  # why Δ is that size
    needs: str  # the runs that test it
    figure: str  # report figure key
    check: Callable[[Frames], Finding]


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict, its primary effect (seed-level 95% CI, n seeds, runs kept and
    excluded), the equivalence p and the evidence shown beside it."""

    claim: str
    text: str
    rule: str
    metric: str
    verdict: str  # one of VERDICTS
    effect: Effect
    p_holm: float
    p_equivalence: float  # TOST p of |E| ≥ smallest_effect
    smallest_effect: float
    seeds_needed: int  # about how many seeds would decide an inconclusive claim
    evidence: str  # secondary metrics, shown beside the primary effect
    reason: str  # why inconclusive; "" otherwise
    needs: str
    figure: str

    @property
    def label(self) -> str:
        if self.verdict == "inconclusive":
            return f"inconclusive (n = {self.effect.n_seeds})"
        return self.verdict


ACCURACY_DELTA = (
    "five points of accuracy: below it, a reader choosing a variant would not choose "
    "differently, and 256 test examples per length resolve it"
)
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
            "lengths. Read only in configurations where the plain RNN has not mastered its "
            f"longest training length (mean exact match there < {rules.RNN_STRUGGLES}): where it "
            "has, there is no bottleneck to see. E = rnn − rnn-attention, same task, width, "
            "depth, lr, lengths and seed (the attention side averaged over its variants); "
            "claimed sign negative.",
            "early_minus_late",
            -1,
            0.05,
            "five points of token accuracy between the earliest and latest quarter",
            "arch rnn and rnn-attention on copy and reverse (presets quick, standard, full)",
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
            0.05,
            ACCURACY_DELTA,
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
            "attn_alignment − attn_alignment_init (the same statistic, best head included, of "
            "the same model at initialisation: what the architecture gives before any data), "
            "per run; claimed sign positive. The uniform-attention mass is shown.",
            "attn_alignment",
            1,
            0.05,
            "five points of attention mass on the expected key",
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
            0.02,
            "two points of exact match around the competence line: a form that close to it "
            "is as workable as the line itself",
            "score functions dot, cosine, general and additive (presets quick, standard, full)",
            "heatmap_score_position",
            rules.c4_score_forms_viable,
        ),
        Claim(
            "C5",
            "Multi-head attention, several readers with their own viewpoints, captures relations "
            "a single head cannot.",
            "long_id_seq_acc: exact match over the longer half of the training lengths. E = the "
            "most − the fewest heads at one width (the same d_model, so each head is narrower), "
            "same other configuration and seed, in every architecture and width run with two or "
            "more head counts; claimed sign positive. ood_seq_acc (competent pairs) and head "
            "diversity (trained − initial Jensen-Shannon divergence) are shown.",
            "long_id_seq_acc",
            1,
            0.05,
            ACCURACY_DELTA,
            "two or more head counts at one width (presets quick, standard, full)",
            "heads",
            rules.c5_heads_help,
        ),
        Claim(
            "C6",
            "A Transformer has no notion of order by itself, so it needs positional encodings.",
            "id_seq_acc in the causal decoder (arch decoder), plain positions. E = position "
            "none − the mean over every other encoding, same other configuration and seed; "
            "claimed sign negative. A causal mask can give order (Kazemnejad et al. 2023), so "
            "this can fail. The bidirectional encoder, which without positions sees an unordered "
            "bag and cannot solve an order task by construction, is shown as that check.",
            "id_seq_acc",
            -1,
            0.05,
            ACCURACY_DELTA,
            "arch decoder with position none and other encodings (presets quick, standard, "
            "replicate-kazemnejad, full)",
            "acc_vs_length",
            rules.c6_order_needs_encoding,
        ),
        Claim(
            "C7",
            "Fixed sinusoidal encodings, being a formula, handle sequences longer than any seen "
            "in training.",
            "ood_seq_acc, plain positions, competent runs. E = sinusoidal − learned (the "
            "lecture's contrast: a formula against a learned table), same other configuration "
            "and seed; claimed sign positive. extrapolation_len − train_max_len and sinusoidal "
            "− none are shown.",
            "ood_seq_acc",
            1,
            0.05,
            ACCURACY_DELTA,
            "plain sinusoidal and learned (presets quick, standard, replicate-deletang, full)",
            "acc_vs_length",
            rules.c7_sinusoidal_extrapolates,
        ),
        Claim(
            "C8",
            "Fixed encodings cannot adapt to the data; learnable ones can adapt to the task.",
            "reached_95_first: for each pair of runs (learned, sinusoidal) of one configuration "
            "and seed, +1 if learned reached validation exact match 0.95 at a later step than "
            "sinusoidal, −1 if earlier, 0 if it cannot be told; a run that never reached 0.95 "
            "is censored at the steps it trained (it did not reach 0.95 by then, and may have "
            "after), so two censored runs, or a censored one against a later success, count 0 "
            "(Gehan's pairwise score). Plain positions. E = the mean score; claimed sign "
            "negative. id_seq_acc is shown.",
            "reached_95_first",
            -1,
            0.2,
            "one pair in five more often decided one way than the other",
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
            0.05,
            ACCURACY_DELTA,
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
            0.05,
            ACCURACY_DELTA,
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
            0.05,
            ACCURACY_DELTA,
            "absolute and relative encodings (every preset)",
            "heatmap_score_position",
            rules.c11_relative_extrapolates_better,
        ),
        Claim(
            "C12",
            "Relative encodings cost more to implement and run.",
            f"log_step_time: the natural log of step_time_ms, so E is a log ratio. E = mean of "
            f"the {RELATIVE} − mean of the {ABSOLUTE}, same other configuration and seed; "
            "claimed sign positive. peak_mem_mb and n_params are shown, not deciding.",
            "log_step_time",
            1,
            round(math.log(1.1), 4),
            "a step 10% slower (log 1.1): less is within the run-to-run noise of a shared "
            "machine and would not change a choice",
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
    family_size = sum(f.effect.tested for f in findings) or 1
    return [
        _verdict(claim, finding, p, family_size)
        for claim, finding, p in zip(CLAIMS.values(), findings, p_holm, strict=True)
    ]


def decide(effect: Effect, p_holm: float, sign: int, smallest_effect: float) -> str:
    """The verdict of a primary effect with the claimed ``sign`` (see DECISION_RULE)."""
    if not effect.tested:
        return "inconclusive"
    if p_holm < ALPHA and abs(effect.estimate) > FLOAT_TOL:
        return "supported" if np.sign(effect.estimate) == sign else "refuted"
    if equivalence_p(effect.seed_diffs, smallest_effect) < ALPHA:
        return "no meaningful difference"
    return "inconclusive"


def holm_family(verdicts: list[Verdict]) -> str:
    """One sentence naming the tests Holm's correction was applied over."""
    tested = [v.claim for v in verdicts if v.effect.tested]
    names = ", ".join(tested) or "none"
    return (
        f"Holm's correction is applied over the family of the primary tests of the "
        f"{len(tested)} claims that could be tested ({names}), one p-value per claim; "
        "secondary metrics are not in it, and each Statistics table is a family of its own."
    )


def _verdict(claim: Claim, finding: Finding, p_holm: float, family_size: int) -> Verdict:
    effect = finding.effect
    verdict = decide(effect, p_holm, claim.sign, claim.smallest_effect)
    needed = seeds_needed(effect.seed_diffs, claim.smallest_effect, family_size)
    if not effect.tested:
        reason = f"{effect.reason}; tested by {claim.needs}"
    elif verdict == "inconclusive":
        reason = (
            f"neither a difference (p (Holm) {p_holm:.3g}, smallest possible "
            f"{effect.min_p:.3g}) nor one within ±{claim.smallest_effect:g} shown with "
            f"{effect.n_seeds} seeds; about {needed} would decide it"
        )
    else:
        reason = ""
    return Verdict(
        claim=claim.id,
        text=claim.text,
        rule=claim.rule,
        metric=claim.metric,
        verdict=verdict,
        effect=effect,
        p_holm=float(p_holm),
        p_equivalence=equivalence_p(effect.seed_diffs, claim.smallest_effect),
        smallest_effect=claim.smallest_effect,
        seeds_needed=needed,
        evidence=finding.evidence,
        reason=reason,
        needs=claim.needs,
        figure=claim.figure,
    )
