"""Tests of analysis.claims and analysis.rules: the registry, the decision, and for every
claim data built to come out supported, refuted, no meaningful difference and
inconclusive; then what each rule reads and leaves out."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from claim_frames import BUILDERS, NO_LENGTHS, NO_POSITIONS, c7, c12, make_runs

from attnstudy.analysis.claims import CLAIMS, RULE_VERSION
from attnstudy.analysis.docs import claims_markdown
from attnstudy.analysis.rules import Frames, relative_vs_absolute
from attnstudy.analysis.verdicts import (
    DECISION_RULE,
    VERDICTS,
    decide,
    evaluate_claims,
    holm_family,
)
from attnstudy.schema import (
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    N_PARAMS,
    NEAR_OOD_SEQ_ACC,
    STEP_TIME_MS,
    STEPS_TO_95,
    STEPS_TRAINED,
)

PRESETS = Path(__file__).parents[1] / "study"
ENOUGH, TOO_FEW = 6, 3  # seeds: 2/2^6 < 0.05 can reject alone; 2/2^3 cannot


def verdict(claim: str, runs: pd.DataFrame, lengths=NO_LENGTHS, positions=NO_POSITIONS):
    """The verdict of one claim, Holm-corrected over the claims these frames test."""
    return next(v for v in evaluate_claims(runs, lengths, positions) if v.claim == claim)


def check(claim: str, runs: pd.DataFrame, lengths=NO_LENGTHS, positions=NO_POSITIONS):
    """The verdict of ``claim`` decided on its own (a Holm family of one), and its finding."""
    c = CLAIMS[claim]
    finding = c.check(Frames.of(runs, lengths, positions))
    return decide(finding.effect, finding.effect.p, c.sign, c.smallest_effect), finding


def effects(size: float, seeds: int, spread: float = 0.001, alternate: bool = False):
    """Per-seed effects ``size`` + a small spread by seed (alternating in sign if asked)."""
    return [size + spread * s * ((-1) ** s if alternate else 1) for s in range(seeds)]


# --- every claim, every verdict ------------------------------------------------------------


def built(claim: str, size: float, seeds: int, alternate: bool = False):
    return BUILDERS[claim](effects(size, seeds, alternate=alternate))


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


# --- the registry and the decision ---------------------------------------------------------


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


# --- what the rules read --------------------------------------------------------------------


def test_ood_comparisons_drop_runs_that_miss_the_longest_training_length_and_their_partners():
    runs = c7(effects(0.1, ENOUGH))[0]
    learned = runs.index[runs["position"] == "learned"]
    runs.loc[learned[0], ID_SEQ_ACC_AT_MAX] = 0.83  # a mean over 1..L could still pass
    runs.loc[learned[0], ID_SEQ_ACC] = 0.96
    effect = check("C7", runs)[1].effect
    assert (effect.n_runs, effect.n_kept, effect.n_incompetent, effect.n_unmatched) == (
        12,
        10,
        1,
        1,
    )
    assert "10 of 12 runs kept" in effect.exclusions() and "longest training length" in (
        effect.exclusions()
    )


def test_competence_is_read_from_the_longest_training_length_where_it_was_not_logged():
    runs, lengths, _ = BUILDERS["C2"](effects(0.3, ENOUGH))
    frames = Frames.of(runs, lengths, NO_POSITIONS)
    at_max = lengths[lengths["length"] == 8].set_index("run_id")["seq_acc"]
    assert frames.runs.set_index("run_id")[ID_SEQ_ACC_AT_MAX].equals(at_max.loc[runs["run_id"]])


def test_in_distribution_claims_keep_runs_that_did_not_learn():
    runs = BUILDERS["C6"](effects(-0.3, ENOUGH))[0].assign(id_seq_acc_at_max=0.2)
    assert check("C6", runs)[1].effect.n_kept == 3 * ENOUGH


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


def test_c1_reads_only_configurations_where_the_plain_rnn_misses_its_longest_length():
    runs, lengths, positions = BUILDERS["C1"](effects(-0.3, ENOUGH))
    assert check("C1", runs, lengths, positions)[0] == "supported"
    v = verdict("C1", runs.assign(id_seq_acc_at_max=0.95), lengths, positions)
    assert v.verdict == "inconclusive" and "no runs" in v.reason


def test_c3_compares_with_the_same_statistic_at_initialisation_not_with_uniform():
    runs = BUILDERS["C3"](effects(0.0, ENOUGH, alternate=True))[0]
    v, finding = check("C3", runs.assign(attn_alignment_uniform=0.01))
    assert v == "no meaningful difference" and "uniform" in finding.evidence


def test_c5_shows_head_diversity_without_deciding_on_it():
    runs, lengths, _ = BUILDERS["C5"](effects(0.0, ENOUGH, alternate=True))
    runs = runs.assign(head_diversity=0.5, head_diversity_init=0.1)
    v, finding = check("C5", runs, lengths)
    assert v == "no meaningful difference" and "head diversity" in finding.evidence


def test_c6_decides_in_the_decoder_and_shows_the_encoder():
    decoder = BUILDERS["C6"](effects(0.0, ENOUGH, alternate=True))[0]
    encoder = decoder.assign(arch="encoder")
    encoder.loc[encoder["position"] == "none", ID_SEQ_ACC] = 0.1
    runs = pd.concat([decoder, encoder], ignore_index=True)
    runs["run_id"] = [f"r{i}" for i in range(len(runs))]
    v, finding = check("C6", runs)
    assert v == "no meaningful difference" and "bidirectional encoder" in finding.evidence


def test_ood_claims_read_twice_the_training_length_from_the_lengths_where_not_logged():
    """Sinusoidal ahead by 0.1 over lengths 9-16 and level beyond: supported from (L, 2L]
    alone, where a mean to 4L would halve the effect."""
    runs = c7(effects(0.1, ENOUGH))[0].drop(columns=NEAR_OOD_SEQ_ACC)
    ahead = np.where(runs["position"] == "sinusoidal", 0.4, 0.3)
    rows = [
        {"run_id": run, "length": n, "train_max_len": 8}
        | {"seq_acc": 1.0 if n <= 8 else acc if n <= 16 else 0.0}
        for run, acc in zip(runs["run_id"], ahead, strict=True)
        for n in range(1, 33)
    ]
    v, finding = check("C7", runs, pd.DataFrame(rows))
    assert v == "supported" and finding.effect.estimate == pytest.approx(0.1)
    assert "at exact match 0.5" in finding.evidence


def test_c7_ignores_randomized_runs():
    runs = c7(effects(0.1, ENOUGH))[0]
    assert check("C7", runs.assign(randomized=True))[0] == "inconclusive"


@pytest.mark.parametrize(
    ("learned", "sinusoidal", "score"),
    [
        ((300.0, 1000), (None, 1000), -1),  # learned reached, sinusoidal never: learned first
        ((None, 1000), (500.0, 1000), 1),  # learned never reached by 1000, sinusoidal at 500
        ((None, 300), (500.0, 1000), 0),  # learned censored at 300: cannot tell
        ((None, 1000), (None, 1000), 0),  # neither reached
    ],
)
def test_c8_treats_a_run_that_never_reached_95_percent_as_censored(learned, sinusoidal, score):
    rows = [
        {"position": p, "seed": s, STEPS_TO_95: reached, STEPS_TRAINED: trained}
        for s in range(ENOUGH)
        for p, (reached, trained) in (("learned", learned), ("sinusoidal", sinusoidal))
    ]
    effect = check("C8", make_runs(*rows))[1].effect
    assert effect.estimate == score


def test_relative_pools_only_shift_invariant_combinations():
    runs = make_runs(
        *[{"score": "additive", "position": p, "seed": s} for p in ("rope", "t5", "sinusoidal")
          for s in range(ENOUGH)]
    )  # fmt: skip
    labels = relative_vs_absolute(runs).fillna("-").tolist()
    assert labels == ["-"] * ENOUGH + ["a"] * ENOUGH + ["b"] * ENOUGH  # additive rope: no
    assert "not shift-invariant" in check("C11", runs)[1].evidence


def test_an_unknown_encoding_is_in_neither_family():
    runs = make_runs({"position": "fire"}, {"position": "t5"})
    assert relative_vs_absolute(runs).fillna("-").tolist() == ["-", "a"]


def test_c12_parameters_are_shown_but_do_not_decide():
    runs = c12(effects(0.0, ENOUGH, alternate=True))[0]
    runs.loc[runs["position"] == "t5", N_PARAMS] = 5000
    v, finding = check("C12", runs)
    assert v == "no meaningful difference" and N_PARAMS in finding.evidence


def test_runs_declared_unsolvable_count_for_c6_only():
    runs = BUILDERS["C11"](effects(0.2, ENOUGH))[0]
    assert check("C11", runs.assign(solvable=True))[0] == "supported"
    runs["solvable"] = runs["position"] != "sinusoidal"
    assert verdict("C11", runs).verdict == "inconclusive"  # no absolute side left
