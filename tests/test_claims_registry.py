"""Tests of analysis.claims and analysis.verdicts over every claim: for each, data built to
come out supported, refuted, no meaningful difference and inconclusive; the registry (metric,
sign, smallest effect, presets, docs) and the decision (Holm, seeds as the unit)."""

import numpy as np
import pandas as pd
import pytest
from claim_frames import (
    BUILDERS,
    ENOUGH,
    NO_LENGTHS,
    NO_POSITIONS,
    PRESETS,
    TOO_FEW,
    built,
    c12,
    check,
    effects,
    make_runs,
    verdict,
)

from attnstudy.analysis.claims import CLAIMS, RULE_VERSION
from attnstudy.analysis.docs import claims_markdown
from attnstudy.analysis.verdicts import (
    DECISION_RULE,
    VERDICTS,
    decide,
    evaluate_claims,
    holm_family,
)
from attnstudy.schema import STEP_TIME_MS


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_claim_is_supported_when_every_seed_shows_twice_its_smallest_effect(claim):
    c = CLAIMS[claim]
    v, finding = check(claim, *built(claim, 2 * c.sign * c.smallest_effect, ENOUGH))
    assert v == "supported", finding.effect.text(claim)


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_claim_is_refuted_when_every_seed_goes_the_other_way(claim):
    c = CLAIMS[claim]
    v, finding = check(claim, *built(claim, -2 * c.sign * c.smallest_effect, ENOUGH))
    assert v == "refuted", finding.effect.text(claim)


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_claim_has_no_meaningful_difference_when_every_seed_is_well_within_it(claim):
    v, finding = check(claim, *built(claim, 0.0, ENOUGH, alternate=True))
    assert v == "no meaningful difference", finding.effect.text(claim)


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_claim_is_inconclusive_with_three_seeds_whatever_the_effect(claim):
    c = CLAIMS[claim]
    frames = built(claim, 2 * c.sign * c.smallest_effect, TOO_FEW)
    v = verdict(claim, *frames)
    assert v.verdict == "inconclusive" and v.effect.min_p == 0.25
    assert f"with {TOO_FEW} seeds" in v.reason and v.seeds_needed > TOO_FEW


def test_evaluate_claims_follows_the_registry():
    verdicts = evaluate_claims(make_runs({}), NO_LENGTHS, NO_POSITIONS)
    assert [v.claim for v in verdicts] == list(CLAIMS)
    assert all(v.rule and v.metric and v.needs and v.text for v in verdicts)
    assert {v.verdict for v in verdicts} <= set(VERDICTS)


def test_every_claim_is_inconclusive_without_runs_and_names_what_it_needs():
    for v in evaluate_claims(make_runs({}).iloc[:0], NO_LENGTHS, NO_POSITIONS):
        assert (v.verdict, v.label) == ("inconclusive", "inconclusive (n = 0)")
        assert v.needs in v.reason and "no runs" in v.reason


def test_needs_names_presets_that_exist():
    for claim in CLAIMS.values():
        named = claim.needs.split("(")[-1].removeprefix("preset").removeprefix("s").rstrip(")")
        for preset in named.split(","):
            preset = preset.strip()
            assert preset == "every preset" or (PRESETS / f"{preset}.yaml").exists(), preset


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_every_claim_declares_one_metric_a_sign_and_a_smallest_effect_with_its_reason(claim):
    c = CLAIMS[claim]
    assert c.metric in c.rule and "claimed sign" in c.rule and c.sign in (1, -1)
    assert c.smallest_effect > 0 and c.why_smallest
    doc = claims_markdown()
    assert f"Δ = {c.smallest_effect:g}: {c.why_smallest}" in doc


def test_docs_carry_the_rule_version_and_its_changes():
    doc = claims_markdown()
    assert f"Rule version {RULE_VERSION}" in doc and f"**Version {RULE_VERSION}.**" in doc


def test_decision_needs_holm_adjusted_p_below_alpha():
    v, finding = check("C12", *c12(effects(0.2, ENOUGH)))
    effect = finding.effect
    assert v == "supported" and effect.p < 0.05
    assert decide(effect, effect.p, -1, 0.1) == "refuted"
    assert decide(effect, 0.2, +1, 0.1) == "inconclusive"  # significant alone, not after Holm


def test_holm_is_applied_over_the_primary_tests_of_the_tested_claims():
    runs = pd.concat(
        [BUILDERS["C12"](effects(0.2, ENOUGH))[0], BUILDERS["C7"](effects(0.1, ENOUGH))[0]],
        ignore_index=True,
    )
    runs["run_id"] = [f"r{i}" for i in range(len(runs))]
    verdicts = evaluate_claims(runs, NO_LENGTHS, NO_POSITIONS)
    tested = [v for v in verdicts if v.effect.tested]
    assert {"C7", "C12"} <= {v.claim for v in tested}
    assert all(v.p_holm >= v.effect.p for v in tested)
    assert all(np.isnan(v.p_holm) for v in verdicts if not v.effect.tested)
    family = holm_family(verdicts)
    assert f"{len(tested)} claims" in family and ", ".join(v.claim for v in tested) in family
    assert "Holm" in DECISION_RULE and "sign-flip" in DECISION_RULE


def test_a_claim_needs_three_seeds():
    v = verdict("C12", c12(effects(0.2, 2))[0])
    assert v.label == "inconclusive (n = 2)" and "needs 3" in v.reason


def test_one_seed_of_many_configurations_is_still_one_seed():
    rows = [
        {"position": p, "heads": h, "score": s, STEP_TIME_MS: t}
        for h in (1, 2, 4, 8)
        for s in ("dot", "general", "cosine")
        for p, t in (("t5", 15.0), ("learned", 10.0))
    ]
    v = verdict("C12", make_runs(*rows))
    assert v.verdict == "inconclusive" and v.effect.n_seeds == 1
