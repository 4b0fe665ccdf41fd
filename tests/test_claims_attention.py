"""Tests of the rules of the attention-mechanism claims C3 (Q/K/V alignment) and C5 (heads):
what each reads and leaves out. C4 (score forms) has its four verdicts in test_claims_registry."""

from claim_frames import BUILDERS, ENOUGH, check, effects


def test_c3_compares_with_the_same_statistic_at_initialisation_not_with_uniform():
    runs = BUILDERS["C3"](effects(0.0, ENOUGH, alternate=True))[0]
    v, finding = check("C3", runs.assign(attn_alignment_uniform=0.01))
    assert v == "no meaningful difference" and "uniform" in finding.evidence


def test_c5_shows_head_diversity_without_deciding_on_it():
    runs, lengths, _ = BUILDERS["C5"](effects(0.0, ENOUGH, alternate=True))
    runs = runs.assign(head_diversity=0.5, head_diversity_init=0.1)
    v, finding = check("C5", runs, lengths)
    assert v == "no meaningful difference" and "head diversity" in finding.evidence
