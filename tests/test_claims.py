"""Tests of analysis.claims: each rule on tiny frames built to land on one side of it."""

import numpy as np
import pandas as pd
import pytest
from frames import BASE_RUN
from hypothesis import given
from hypothesis import strategies as st

from analysis.claims import (
    CLAIMS,
    c1_bottleneck,
    c2_attention_removes_bottleneck,
    c3_alignment_emerges,
    c4_score_forms_viable,
    c5_heads_help,
    c6_order_needs_encoding,
    c7_sinusoidal_extrapolates,
    c8_learned_adapts,
    c9_learned_fails_beyond_training,
    c10_absolute_weaker_long_range,
    c11_relative_extrapolates_better,
    c12_relative_costs_more,
    ci_verdict,
    combine_all,
    combine_any,
    evaluate_claims,
)

BASE = BASE_RUN | {
    "n_params": 1000,
    "step_time_ms": 10.0,
    "peak_mem_mb": 100.0,
    "steps_to_95": 500.0,
    "attn_sharpness": np.nan,
    "head_diversity": np.nan,
}
VERDICTS = {"supported", "refuted", "mixed", "not tested"}
SEEDS = range(3)


def make_runs(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**BASE, "run_id": f"r{i}", **row} for i, row in enumerate(rows)])


def seeds(**row) -> list[dict]:
    """Three seeds of one configuration, the metric nudged by seed so CIs have width."""
    return [{**row, "seed": s} for s in SEEDS]


def nudged(metric: str, value: float, **row) -> list[dict]:
    return [{**row, "seed": s, metric: value + 0.01 * s} for s in SEEDS]


EMPTY = make_runs({}).iloc[:0]
NO_LENGTHS = pd.DataFrame(columns=["run_id", "length", "seq_acc"])
NO_POSITIONS = pd.DataFrame(columns=["run_id", "target_pos", "token_acc"])


@pytest.mark.parametrize(
    ("low", "high", "above", "expected"),
    [
        (0.1, 0.2, True, "supported"),
        (-0.2, -0.1, True, "refuted"),
        (-0.1, 0.1, True, "mixed"),
        (-0.2, -0.1, False, "supported"),
        (0.1, 0.2, False, "refuted"),
        (np.nan, np.nan, True, "not tested"),
    ],
)
def test_ci_verdict_depends_on_which_side_of_threshold_the_ci_lies(low, high, above, expected):
    assert ci_verdict(low, high, 0.0, above) == expected


def test_ci_verdict_touching_threshold_is_mixed():
    assert ci_verdict(0.5, 0.9, threshold=0.5) == "mixed"


def test_ci_verdict_treats_rounding_error_in_a_zero_difference_as_zero():
    assert ci_verdict(-1e-15, -1e-16) == "mixed"


@given(st.lists(st.sampled_from(sorted(VERDICTS)), max_size=4))
def test_combine_all_and_any_agree_on_unanimous_parts(parts):
    tested = set(parts) - {"not tested"}
    assert combine_all(parts) in VERDICTS and combine_any(parts) in VERDICTS
    if len(tested) == 1:
        assert combine_all(parts) == combine_any(parts) == tested.pop()


def test_combine_any_supported_when_one_part_supports_and_none_refutes():
    assert combine_any(["supported", "mixed", "not tested"]) == "supported"
    assert combine_all(["supported", "mixed"]) == "mixed"
    assert combine_any(["supported", "refuted"]) == "mixed"


def test_combine_ignores_untested_parts():
    assert combine_all(["not tested", "refuted"]) == "refuted"
    assert combine_all(["not tested"]) == "not tested"


def test_evaluate_claims_covers_c1_to_c12_in_order_with_rules():
    verdicts = evaluate_claims(EMPTY, NO_LENGTHS, NO_POSITIONS)
    assert [v.claim for v in verdicts] == [f"C{i}" for i in range(1, 13)]
    assert all(v.rule and v.needs and v.figure and v.text for v in verdicts)


def test_every_claim_is_not_tested_without_runs():
    verdicts = evaluate_claims(EMPTY, NO_LENGTHS, NO_POSITIONS)
    assert {v.verdict for v in verdicts} == {"not tested"}


def test_needs_name_known_presets():
    presets = {"quick", "full", "replicate-kazemnejad", "replicate-deletang"}
    for spec in CLAIMS.values():
        assert set(spec.needs.split(", ")) <= presets


def rnn_frames(early_acc: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    runs = make_runs(*seeds(arch="rnn", position="none"))
    lengths = pd.DataFrame(
        [
            {"run_id": run, "length": n, "seq_acc": max(0.0, 1 - n / 40 - 0.01 * i)}
            for i, run in enumerate(runs.run_id)
            for n in (10, 20, 40, 80)
        ]
    )
    positions = pd.DataFrame(
        [
            {"run_id": run, "split": "ood", "target_pos": p, "token_acc": acc + 0.01 * i}
            for i, run in enumerate(runs.run_id)
            for p, acc in enumerate([early_acc, 0.6, 0.6, 0.6])
        ]
    )
    return runs, lengths, positions


def test_c1_supported_when_accuracy_falls_with_length_and_earliest_positions_are_worst():
    assert c1_bottleneck(*rnn_frames(early_acc=0.2)).verdict == "supported"


def test_c1_mixed_when_earliest_positions_are_best():
    assert c1_bottleneck(*rnn_frames(early_acc=0.9)).verdict == "mixed"


def test_c1_uses_length_trend_alone_without_copy_positions():
    runs, lengths, _ = rnn_frames(early_acc=0.2)
    verdict = c1_bottleneck(runs, lengths, NO_POSITIONS)
    assert verdict.verdict == "supported"
    assert "n=0" in verdict.evidence


def test_c2_supported_when_attention_beats_plain_rnn_at_same_budget():
    runs = make_runs(
        *nudged("ood_seq_acc", 0.6, arch="rnn-attention", score="additive"),
        *nudged("ood_seq_acc", 0.1, arch="rnn", score="none"),
    )
    verdict = c2_attention_removes_bottleneck(runs)
    assert verdict.verdict == "supported"
    assert "wilcoxon" in verdict.evidence and "3 pairs" in verdict.evidence


def test_c2_refuted_when_plain_rnn_is_better():
    runs = make_runs(
        *nudged("ood_seq_acc", 0.1, arch="rnn-attention"),
        *nudged("ood_seq_acc", 0.6, arch="rnn"),
    )
    assert c2_attention_removes_bottleneck(runs).verdict == "refuted"


def test_c2_not_tested_without_rnn_runs():
    runs = make_runs(*nudged("ood_seq_acc", 0.6, arch="rnn-attention"))
    assert c2_attention_removes_bottleneck(runs).verdict == "not tested"


def test_c3_compares_sharpness_with_uniform_weight_over_training_lengths():
    # train_max_len 2: uniform weight = (1/1 + 1/2) / 2 = 0.75
    sharp = make_runs(*nudged("attn_sharpness", 0.9, train_max_len=2))
    blurred = make_runs(*nudged("attn_sharpness", 0.6, train_max_len=2))
    assert c3_alignment_emerges(sharp).verdict == "supported"
    assert c3_alignment_emerges(blurred).verdict == "refuted"


def test_c3_ignores_tasks_without_a_known_alignment():
    runs = make_runs(*nudged("attn_sharpness", 0.9, task="addition"))
    assert c3_alignment_emerges(runs).verdict == "not tested"


def score_runs(id_acc: dict[str, float]) -> pd.DataFrame:
    return make_runs(
        *[row for form, acc in id_acc.items() for row in nudged("id_seq_acc", acc, score=form)]
    )


def test_c4_supported_when_all_four_forms_learn_in_distribution():
    runs = score_runs({"dot": 0.96, "cosine": 0.96, "general": 0.96, "additive": 0.97})
    assert c4_score_forms_viable(runs).verdict == "supported"


def test_c4_mixed_when_one_form_fails():
    runs = score_runs({"dot": 0.96, "cosine": 0.2, "general": 0.96, "additive": 0.96})
    assert c4_score_forms_viable(runs).verdict == "mixed"


def test_c4_refuted_when_no_form_learns():
    runs = score_runs({"dot": 0.1, "cosine": 0.2, "general": 0.1, "additive": 0.3})
    assert c4_score_forms_viable(runs).verdict == "refuted"


def test_c4_not_tested_when_a_form_has_no_runs():
    runs = score_runs({"dot": 0.96, "cosine": 0.96, "general": 0.96})
    assert c4_score_forms_viable(runs).verdict == "not tested"


def head_runs(many_acc: float, diversity: float) -> pd.DataFrame:
    return make_runs(
        *nudged("ood_seq_acc", many_acc, heads=8, head_diversity=diversity),
        *nudged("ood_seq_acc", 0.3, heads=1),
        *nudged("ood_seq_acc", 0.3, heads=4, d_model=32),  # single head count: ignored
    )


def test_c5_supported_when_more_heads_help_and_heads_differ():
    assert c5_heads_help(head_runs(many_acc=0.6, diversity=0.2)).verdict == "supported"


def test_c5_mixed_when_heads_help_but_attend_identically():
    assert c5_heads_help(head_runs(many_acc=0.6, diversity=0.0)).verdict == "mixed"


def test_c5_refuted_when_more_heads_hurt():
    assert c5_heads_help(head_runs(many_acc=0.1, diversity=0.2)).verdict == "refuted"


def encoding_runs(arch: str, none_acc: float) -> list[dict]:
    return [
        *nudged("id_seq_acc", none_acc, arch=arch, position="none"),
        *nudged("id_seq_acc", 0.8, arch=arch, position="rope"),
        *nudged("id_seq_acc", 0.9, arch=arch, position="sinusoidal"),
    ]


def test_c6_supported_when_none_is_worse_in_encoder_and_decoder():
    runs = make_runs(*encoding_runs("encoder", 0.1), *encoding_runs("decoder", 0.1))
    assert c6_order_needs_encoding(runs).verdict == "supported"


def test_c6_mixed_when_causal_decoder_works_without_encoding():
    runs = make_runs(*encoding_runs("encoder", 0.1), *encoding_runs("decoder", 0.85))
    assert c6_order_needs_encoding(runs).verdict == "mixed"


def test_c6_refuted_when_encoder_is_better_without_encoding():
    runs = make_runs(*encoding_runs("encoder", 0.95))
    assert c6_order_needs_encoding(runs).verdict == "refuted"


def test_c7_supported_when_sinusoidal_extrapolates():
    runs = make_runs(*nudged("ood_seq_acc", 0.7, position="sinusoidal"))
    assert c7_sinusoidal_extrapolates(runs).verdict == "supported"


def test_c7_refuted_when_sinusoidal_fails_beyond_training():
    runs = make_runs(*nudged("ood_seq_acc", 0.05, position="sinusoidal"))
    assert c7_sinusoidal_extrapolates(runs).verdict == "refuted"


def test_c7_ignores_randomized_sinusoidal_runs():
    runs = make_runs(*nudged("ood_seq_acc", 0.7, position="sinusoidal", randomized=True))
    assert c7_sinusoidal_extrapolates(runs).verdict == "not tested"


def test_c8_supported_when_learned_reaches_95_percent_sooner():
    runs = make_runs(
        *nudged("steps_to_95", 300.0, position="learned"),
        *nudged("steps_to_95", 900.0, position="sinusoidal"),
    )
    assert c8_learned_adapts(runs).verdict == "supported"


def test_c8_refuted_when_learned_is_less_accurate_and_no_faster():
    runs = make_runs(
        *nudged("id_seq_acc", 0.5, position="learned"),
        *nudged("id_seq_acc", 0.9, position="sinusoidal"),
    )
    assert c8_learned_adapts(runs).verdict == "refuted"


def test_c9_supported_when_learned_fails_beyond_training():
    runs = make_runs(*nudged("ood_seq_acc", 0.02, position="learned"))
    assert c9_learned_fails_beyond_training(runs).verdict == "supported"


def test_c9_refuted_when_learned_extrapolates():
    runs = make_runs(*nudged("ood_seq_acc", 0.8, position="learned"))
    assert c9_learned_fails_beyond_training(runs).verdict == "refuted"


def test_c9_not_tested_with_a_single_seed():
    runs = make_runs({"position": "learned", "ood_seq_acc": 0.02})
    verdict = c9_learned_fails_beyond_training(runs)
    assert verdict.verdict == "not tested" and verdict.needs == "quick"


def test_c9_excludes_diverged_runs():
    runs = make_runs(
        *nudged("ood_seq_acc", 0.02, position="learned"),
        {"position": "learned", "status": "diverged", "ood_seq_acc": np.nan, "seed": 9},
    )
    assert "n=3" in c9_learned_fails_beyond_training(runs).evidence


def family_runs(relative_acc: float, absolute_acc: float, task: str = "copy") -> list[dict]:
    return [
        *nudged("ood_seq_acc", relative_acc, task=task, position="t5"),
        *nudged("ood_seq_acc", relative_acc, task=task, position="alibi"),
        *nudged("ood_seq_acc", absolute_acc, task=task, position="sinusoidal"),
        *nudged("ood_seq_acc", absolute_acc, task=task, position="learned"),
    ]


def test_c10_supported_when_relative_wins_on_associative_recall():
    runs = make_runs(*family_runs(0.6, 0.1, task="associative_recall"), *family_runs(0.1, 0.6))
    assert c10_absolute_weaker_long_range(runs).verdict == "supported"


def test_c10_not_tested_without_associative_recall():
    verdict = c10_absolute_weaker_long_range(make_runs(*family_runs(0.6, 0.1)))
    assert verdict.verdict == "not tested" and verdict.needs == "full"


def test_c11_refuted_when_absolute_extrapolates_better():
    runs = make_runs(*family_runs(0.1, 0.5), *family_runs(0.2, 0.4, task="reverse"))
    assert c11_relative_extrapolates_better(runs).verdict == "refuted"


def test_c11_pairs_families_by_task_and_seed():
    runs = make_runs(*family_runs(0.6, 0.1), *family_runs(0.6, 0.1, task="reverse"))
    assert "6 pairs" in c11_relative_extrapolates_better(runs).evidence


def test_c12_supported_when_relative_encodings_are_slower():
    runs = make_runs(
        *nudged("step_time_ms", 15.0, position="t5"),
        *nudged("step_time_ms", 10.0, position="sinusoidal"),
    )
    assert c12_relative_costs_more(runs).verdict == "supported"


def test_c12_refuted_when_relative_encodings_are_cheaper():
    runs = make_runs(
        *nudged("step_time_ms", 8.0, position="rope"),
        *nudged("step_time_ms", 10.0, position="none"),
    )
    assert c12_relative_costs_more(runs).verdict == "refuted"
