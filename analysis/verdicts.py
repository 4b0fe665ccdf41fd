"""How a claim of the registry (``analysis.claims``) is decided: every claim's primary
effect, Holm-corrected over the family of the claims' primary tests, becomes one of four
verdicts (``DECISION_RULE``), with the reason an inconclusive one gives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from attnstudy.analysis.aggregate import N_BOOT, holm
from attnstudy.analysis.claims import CLAIMS, Claim
from attnstudy.analysis.effects import (
    ALPHA,
    COMPETENT_ID_ACC,
    FLOAT_TOL,
    MIN_SEEDS,
    Effect,
    equivalence_p,
    seeds_needed,
)
from attnstudy.analysis.rules import Finding, Frames

VERDICTS = ("supported", "refuted", "no meaningful difference", "inconclusive")
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
    "(tests/test_power.py)."
)


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
