"""Tests of analysis.claims and analysis.rules: every claim's rule on tiny synthetic frames
built to come out supported, refuted and inconclusive, and the regressions of issue 10."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from frames import BASE_RUN

from analysis.claims import CLAIMS, DECISION_RULE, VERDICTS, decide, evaluate_claims, holm_family
from analysis.effects import MIN_SEEDS
from analysis.rules import Frames, relative_vs_absolute

SEEDS = range(MIN_SEEDS)
PRESETS = Path(__file__).parents[1] / "study"


def make_runs(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**BASE_RUN, "run_id": f"r{i}", **row} for i, row in enumerate(rows)])


def nudged(metric: str, value: float, seeds=SEEDS, **row) -> list[dict]:
    """One configuration over ``seeds``, ``metric`` nudged by seed so intervals have width."""
    return [{**row, "seed": s, metric: value + 0.01 * s} for s in seeds]


NO_LENGTHS = pd.DataFrame(columns=["run_id", "length", "seq_acc", "train_max_len"])
NO_POSITIONS = pd.DataFrame(
    columns=["run_id", "task", "split", "length", "target_pos", "token_acc"]
)


def verdict(claim: str, runs: pd.DataFrame, lengths=NO_LENGTHS, positions=NO_POSITIONS):
    """The verdict of one claim, Holm-corrected over the claims these frames test."""
    return next(v for v in evaluate_claims(runs, lengths, positions) if v.claim == claim)


def check(claim: str, runs: pd.DataFrame, lengths=NO_LENGTHS, positions=NO_POSITIONS):
    """The verdict of ``claim`` decided on its own (a Holm family of one)."""
    finding = CLAIMS[claim].check(Frames.of(runs, lengths, positions))
    return decide(finding.effect, finding.effect.p, CLAIMS[claim].sign), finding


# --- the registry and the decision ---------------------------------------------------------


def test_evaluate_claims_follows_the_registry():
    verdicts = evaluate_claims(make_runs({}), NO_LENGTHS, NO_POSITIONS)
    assert [v.claim for v in verdicts] == list(CLAIMS)
    assert all(v.rule and v.metric and v.needs and v.text for v in verdicts)


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


def test_one_primary_metric_per_claim_declared_in_its_rule():
    for claim in CLAIMS.values():
        assert claim.rule.startswith(claim.metric) or f"{claim.metric}" in claim.rule
        assert claim.sign in (1, -1)


def test_decision_needs_holm_adjusted_p_below_alpha():
    finding = CLAIMS["C12"].check(Frames.of(cost_runs(15.0, 10.0, 10.0), NO_LENGTHS, NO_POSITIONS))
    effect = finding.effect
    assert effect.p < 0.05
    assert decide(effect, effect.p, +1) == "supported"
    assert decide(effect, effect.p, -1) == "refuted"
    assert decide(effect, 0.2, +1) == "mixed"  # significant alone, not after Holm


def test_holm_is_applied_over_the_primary_tests_of_the_tested_claims():
    runs = pd.concat([cost_runs(15.0, 10.0, 10.0), heads_runs(0.3, 0.1)], ignore_index=True)
    runs["run_id"] = [f"r{i}" for i in range(len(runs))]
    verdicts = evaluate_claims(runs, NO_LENGTHS, NO_POSITIONS)
    tested = [v for v in verdicts if v.effect.tested]
    assert {"C5", "C12"} <= {v.claim for v in tested}
    assert all(v.p_holm >= v.effect.p for v in tested)
    assert all(np.isnan(v.p_holm) for v in verdicts if not v.effect.tested)
    family = holm_family(verdicts)
    assert f"{len(tested)} claims" in family and ", ".join(v.claim for v in tested) in family
    assert "Holm" in DECISION_RULE and "primary" in DECISION_RULE


# --- issue 10 item 9: compare only what learned ------------------------------------------


def learned_vs_t5(learned_id: list[float], seeds=range(4)) -> pd.DataFrame:
    return make_runs(
        *[
            {"position": "learned", "seed": s, "id_seq_acc": acc, "ood_seq_acc": 0.1}
            for s, acc in zip(seeds, learned_id, strict=True)
        ],
        *nudged("ood_seq_acc", 0.5, seeds, position="t5"),
    )


def test_ood_comparisons_drop_incompetent_runs_and_their_partners():
    v, finding = check("C9", learned_vs_t5([0.5, 1.0, 1.0, 1.0]))
    effect = finding.effect
    assert v == "supported"
    assert (effect.n_runs, effect.n_kept, effect.n_incompetent, effect.n_unmatched) == (8, 6, 1, 1)
    assert "6 of 8 runs kept" in effect.exclusions() and "below 0.95" in effect.exclusions()


def test_too_few_competent_runs_is_inconclusive_with_n():
    v, finding = check("C9", learned_vs_t5([0.5, 0.5, 1.0, 1.0]))
    assert v == "inconclusive" and finding.effect.n_seeds == 2
    report = verdict("C9", learned_vs_t5([0.5, 0.5, 1.0, 1.0]))
    assert report.label == "inconclusive (n = 2)" and "needs 3" in report.reason


def test_in_distribution_claims_keep_runs_that_did_not_learn():
    runs = make_runs(
        *nudged("id_seq_acc", 0.1, arch="encoder", position="none"),
        *nudged("id_seq_acc", 0.6, arch="encoder", position="sinusoidal"),
    )
    assert check("C6", runs)[1].effect.n_kept == 6


# --- issue 10 item 10: seeds are the unit of replication ---------------------------------


def test_a_verdict_needs_three_seeds_per_side():
    runs = cost_runs(15.0, 10.0, 10.0, seeds=range(2))
    v = verdict("C12", runs)
    assert v.label == "inconclusive (n = 2)"
    assert "at most 2 seed(s)" in v.reason


def test_one_seed_of_many_configurations_is_still_inconclusive():
    rows = [
        {"position": p, "heads": h, "score": s, "step_time_ms": t}
        for h in (1, 2, 4, 8)
        for s in ("dot", "general", "cosine")
        for p, t in (("t5", 15.0), ("sinusoidal", 10.0), ("learned", 10.0))
    ]
    assert verdict("C12", make_runs(*rows)).verdict == "inconclusive"


# --- C1 (item 11) ------------------------------------------------------------------------


def rnn_frames(rnn_early: float, attention_early: float, archs=("rnn", "rnn-attention")):
    """rnn and rnn-attention runs on copy whose token accuracy within each training length
    is ``*_early`` on the first half of the positions and 1.0 on the rest."""
    early = {"rnn": rnn_early, "rnn-attention": attention_early}
    runs = make_runs(*[r for arch in archs for r in nudged("id_seq_acc", 0.9, arch=arch)])
    positions = pd.DataFrame(
        [
            {"run_id": run, "task": "copy", "split": "id", "length": n, "target_pos": i}
            | {"token_acc": early[arch] if i < n / 2 else 1.0}
            for run, arch in zip(runs["run_id"], runs["arch"], strict=True)
            for n in range(1, 9)
            for i in range(n)
        ]
    )
    return runs, NO_LENGTHS, positions


def test_c1_supported_when_earliest_input_fades_only_without_attention():
    assert check("C1", *rnn_frames(0.5, 1.0))[0] == "supported"


def test_c1_refuted_when_attention_loses_the_earliest_input_more():
    assert check("C1", *rnn_frames(1.0, 0.5))[0] == "refuted"


def test_c1_inconclusive_without_the_attention_baseline():
    v = verdict("C1", *rnn_frames(0.5, 1.0, archs=("rnn",)))
    assert v.verdict == "inconclusive" and "rnn-attention" in v.reason


# --- C2 ----------------------------------------------------------------------------------


def long_length_frames(attention_acc: float, rnn_acc: float, seeds=SEEDS):
    runs = make_runs(
        *[{"arch": a, "seed": s} for a in ("rnn-attention", "rnn") for s in seeds]
    ).assign(train_max_len=8)
    acc = {"rnn-attention": attention_acc, "rnn": rnn_acc}
    lengths = pd.DataFrame(
        [
            {"run_id": run, "length": n, "train_max_len": 8}
            | {"seq_acc": 1.0 if n <= 4 else acc[arch]}  # short lengths: both perfect
            for run, arch in zip(runs["run_id"], runs["arch"], strict=True)
            for n in range(1, 17)
        ]
    )
    return runs, lengths


def test_c2_supported_when_attention_keeps_long_training_lengths():
    assert check("C2", *long_length_frames(0.9, 0.2))[0] == "supported"


def test_c2_refuted_when_plain_rnn_is_better_at_long_lengths():
    assert check("C2", *long_length_frames(0.2, 0.9))[0] == "refuted"


def test_c2_inconclusive_with_two_seeds():
    assert verdict("C2", *long_length_frames(0.9, 0.2, seeds=range(2))).verdict == "inconclusive"


# --- C3 (item 12) ------------------------------------------------------------------------


def alignment_runs(alignment: float, uniform: float, sharpness: float = 0.9) -> pd.DataFrame:
    return make_runs(
        *nudged("attn_alignment", alignment, attn_alignment_uniform=uniform),
    ).assign(attn_sharpness=sharpness)


def test_c3_supported_when_attention_finds_the_expected_position():
    assert check("C3", alignment_runs(0.8, 0.1))[0] == "supported"


def test_c3_refuted_when_attention_avoids_the_expected_position():
    assert check("C3", alignment_runs(0.02, 0.1))[0] == "refuted"


def test_c3_a_head_staring_at_sep_is_not_alignment():
    runs = make_runs(*[{"seed": s, "attn_alignment": 0.1} for s in SEEDS])
    runs = runs.assign(attn_alignment_uniform=0.1, attn_sharpness=1.0)  # peaked, not aligned
    assert check("C3", runs)[0] == "mixed"


def test_c3_inconclusive_without_the_alignment_metric():
    runs = make_runs(*nudged("attn_sharpness", 0.9))
    assert verdict("C3", runs).label == "inconclusive (n = 0)"


# --- C4 ----------------------------------------------------------------------------------


def score_runs(id_acc: dict[str, float]) -> pd.DataFrame:
    return make_runs(*[r for f, acc in id_acc.items() for r in nudged("id_seq_acc", acc, score=f)])


FOUR = {"dot": 0.97, "cosine": 0.97, "general": 0.97, "additive": 0.97}


def test_c4_supported_when_every_form_learns_the_training_lengths():
    assert check("C4", score_runs(FOUR))[0] == "supported"


def test_c4_refuted_when_one_form_fails():
    assert check("C4", score_runs(FOUR | {"cosine": 0.3}))[0] == "refuted"


def test_c4_inconclusive_when_a_form_has_no_runs():
    runs = score_runs({k: v for k, v in FOUR.items() if k != "general"})
    assert verdict("C4", runs).verdict == "inconclusive"


# --- C5 (item 13) ------------------------------------------------------------------------


def heads_runs(trained: float, init: float, heads: int = 4) -> pd.DataFrame:
    return make_runs(*nudged("head_diversity", trained, heads=heads, head_diversity_init=init))


def test_c5_supported_when_training_makes_heads_differ():
    assert check("C5", heads_runs(0.3, 0.1))[0] == "supported"


def test_c5_refuted_when_heads_become_more_alike_than_at_initialisation():
    assert check("C5", heads_runs(0.05, 0.2))[0] == "refuted"  # diversity > 0, yet refuted


def test_c5_inconclusive_with_single_head_runs():
    assert verdict("C5", heads_runs(0.0, 0.0, heads=1)).verdict == "inconclusive"


# --- C6 ----------------------------------------------------------------------------------


def encoding_runs(arch: str, none_acc: float) -> list[dict]:
    return [
        *nudged("id_seq_acc", none_acc, arch=arch, position="none"),
        *nudged("id_seq_acc", 0.8, arch=arch, position="rope"),
        *nudged("id_seq_acc", 0.9, arch=arch, position="sinusoidal"),
    ]


def test_c6_supported_when_the_encoder_fails_without_an_encoding():
    runs = make_runs(*encoding_runs("encoder", 0.1), *encoding_runs("decoder", 0.85))
    v, finding = check("C6", runs)
    assert v == "supported" and "causal decoder" in finding.evidence


def test_c6_refuted_when_the_encoder_is_better_without_an_encoding():
    assert check("C6", make_runs(*encoding_runs("encoder", 0.95)))[0] == "refuted"


def test_c6_decoder_alone_does_not_decide():
    v = verdict("C6", make_runs(*encoding_runs("decoder", 0.1)))
    assert v.verdict == "inconclusive" and "encoder" in v.reason


# --- C7 and C9 (item 14) -----------------------------------------------------------------


def ood_runs(**ood: float) -> pd.DataFrame:
    return make_runs(*[r for p, acc in ood.items() for r in nudged("ood_seq_acc", acc, position=p)])


def test_c7_supported_below_half_when_sinusoidal_beats_learned_and_none():
    runs = ood_runs(sinusoidal=0.3, learned=0.1, none=0.05)  # all below the old 0.5
    v, finding = check("C7", runs)
    assert v == "supported" and "extrapolation_len" in finding.evidence


def test_c7_refuted_when_one_comparator_extrapolates_better():
    assert check("C7", ood_runs(sinusoidal=0.3, learned=0.6, none=0.05))[0] == "refuted"


def test_c7_inconclusive_without_learned():
    v = verdict("C7", ood_runs(sinusoidal=0.3, none=0.05))
    assert v.verdict == "inconclusive" and "learned" in v.reason


def test_c7_ignores_randomized_runs():
    runs = ood_runs(sinusoidal=0.3, learned=0.1, none=0.05).assign(randomized=True)
    assert check("C7", runs)[0] == "inconclusive"


def test_c9_supported_when_learned_falls_behind_the_relative_family():
    assert check("C9", ood_runs(learned=0.05, t5=0.4, alibi=0.3))[0] == "supported"


def test_c9_refuted_above_half_only_when_learned_beats_relative():
    assert check("C9", ood_runs(learned=0.4, t5=0.1))[0] == "refuted"
    assert check("C9", ood_runs(learned=0.8, t5=0.9))[0] == "supported"  # old rule: refuted


def test_c9_inconclusive_without_a_relative_encoding():
    assert verdict("C9", ood_runs(learned=0.05, sinusoidal=0.3)).verdict == "inconclusive"


# --- C8 ----------------------------------------------------------------------------------


def steps_runs(learned: float, sinusoidal: float) -> pd.DataFrame:
    return make_runs(
        *nudged("steps_to_95", learned, position="learned"),
        *nudged("steps_to_95", sinusoidal, position="sinusoidal"),
    )


def test_c8_supported_when_learned_reaches_95_percent_sooner():
    assert check("C8", steps_runs(300.0, 900.0))[0] == "supported"


def test_c8_refuted_when_learned_is_slower():
    assert check("C8", steps_runs(900.0, 300.0))[0] == "refuted"


def test_c8_counts_a_run_that_never_reached_95_percent_at_its_steps_trained():
    runs = steps_runs(np.nan, 600.0).assign(steps_trained=1000)
    assert check("C8", runs)[0] == "refuted"


def test_c8_inconclusive_without_sinusoidal():
    assert verdict("C8", steps_runs(300.0, 900.0).iloc[:3]).verdict == "inconclusive"


# --- C10 and C11 (items 7 and 9) ---------------------------------------------------------


def family_runs(relative: float, absolute: float, task: str = "copy", **row) -> list[dict]:
    return [
        *nudged("ood_seq_acc", relative, task=task, position="t5", **row),
        *nudged("ood_seq_acc", relative, task=task, position="alibi", **row),
        *nudged("ood_seq_acc", absolute, task=task, position="sinusoidal", **row),
        *nudged("ood_seq_acc", absolute, task=task, position="learned", **row),
    ]


def test_c10_supported_when_relative_wins_on_associative_recall():
    runs = make_runs(*family_runs(0.6, 0.1, "associative_recall"), *family_runs(0.1, 0.6))
    assert check("C10", runs)[0] == "supported"


def test_c10_refuted_when_absolute_wins_on_associative_recall():
    assert check("C10", make_runs(*family_runs(0.1, 0.6, "associative_recall")))[0] == "refuted"


def test_c10_reads_every_task_that_declares_itself_long_range():
    runs = make_runs(*family_runs(0.6, 0.1, "sorted_recall"), *family_runs(0.1, 0.6))
    assert check("C10", runs)[0] == "supported"


def test_c10_inconclusive_without_a_long_range_task():
    v = verdict("C10", make_runs(*family_runs(0.6, 0.1)))
    assert v.verdict == "inconclusive" and "sorted_recall" in v.reason


def test_c11_supported_and_refuted_by_the_families():
    assert check("C11", make_runs(*family_runs(0.6, 0.1)))[0] == "supported"
    assert check("C11", make_runs(*family_runs(0.1, 0.6)))[0] == "refuted"


def test_c11_inconclusive_when_the_absolute_side_never_learned():
    runs = make_runs(*family_runs(0.6, 0.1))
    runs.loc[runs["position"].isin(["sinusoidal", "learned"]), "id_seq_acc"] = 0.5
    v, finding = check("C11", runs)
    assert v == "inconclusive" and finding.effect.n_incompetent == 6


def test_relative_pools_only_shift_invariant_combinations():
    runs = make_runs(
        *nudged("ood_seq_acc", 0.9, score="additive", position="rope"),  # tanh after rotation
        *nudged("ood_seq_acc", 0.1, score="additive", position="t5"),
        *nudged("ood_seq_acc", 0.1, score="additive", position="sinusoidal"),
    )
    assert relative_vs_absolute(runs).fillna("-").tolist() == ["-"] * 3 + ["a"] * 3 + ["b"] * 3
    v, finding = check("C11", runs)
    assert v == "mixed" and "not shift-invariant" in finding.evidence


def test_an_unknown_encoding_is_in_neither_family():
    runs = make_runs({"position": "fire"}, {"position": "t5"})
    assert relative_vs_absolute(runs).fillna("-").tolist() == ["-", "a"]


# --- C12 (item 15) -----------------------------------------------------------------------


def cost_runs(relative: float, sinusoidal: float, learned: float, seeds=SEEDS) -> pd.DataFrame:
    return make_runs(
        *nudged("step_time_ms", relative, seeds, position="t5", n_params=2000),
        *nudged("step_time_ms", sinusoidal, seeds, position="sinusoidal", n_params=1000),
        *nudged("step_time_ms", learned, seeds, position="learned", n_params=1500),
    )


def test_c12_supported_when_relative_encodings_are_slower():
    assert check("C12", cost_runs(15.0, 10.0, 10.0))[0] == "supported"


def test_c12_compares_with_learned_too():
    assert check("C12", cost_runs(12.0, 10.0, 16.0))[0] == "refuted"


def test_c12_parameters_are_shown_but_do_not_decide():
    v, finding = check("C12", cost_runs(10.0, 10.0, 10.0))
    assert v == "mixed" and "n_params" in finding.evidence


def test_c12_inconclusive_without_relative_runs():
    runs = cost_runs(15.0, 10.0, 10.0)
    assert verdict("C12", runs[runs["position"] != "t5"]).verdict == "inconclusive"


def test_verdicts_are_among_the_four():
    runs = pd.concat([cost_runs(15.0, 10.0, 10.0), score_runs(FOUR)], ignore_index=True)
    runs["run_id"] = [f"r{i}" for i in range(len(runs))]
    assert {v.verdict for v in evaluate_claims(runs, NO_LENGTHS, NO_POSITIONS)} <= set(VERDICTS)


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_every_rule_text_is_fixed_and_names_its_claimed_sign(claim):
    assert "claimed sign" in CLAIMS[claim].rule


# --- unsolvable blocks -------------------------------------------------------------------


def test_runs_declared_unsolvable_count_for_c6_only():
    encoder = make_runs(*encoding_runs("encoder", 0.1))
    encoder["solvable"] = encoder["position"] != "none"  # the study declared them so
    assert check("C6", encoder)[0] == "supported"
    families = make_runs(*family_runs(0.6, 0.1))
    families["solvable"] = True
    assert check("C11", families)[0] == "supported"
    families.loc[families["position"].isin(["sinusoidal", "learned"]), "solvable"] = False
    v = verdict("C11", families)
    assert v.verdict == "inconclusive"  # no absolute side left to compare with
