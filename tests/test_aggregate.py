"""Tests of analysis.aggregate on tiny hand-computed frames."""

import numpy as np
import pandas as pd
import pytest
from frames import BASE_RUN as BASE
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.aggregate import (
    METHODS_TEXT,
    accuracy_by_length,
    bootstrap_ci,
    bootstrap_diff_ci,
    cliffs_delta,
    compare,
    early_late_gap,
    holm,
    kruskal_p,
    length_trend,
    mean_reciprocal_rank,
    pairwise_comparisons,
    summary_table,
)

accuracies = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12)


def make_runs(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**BASE, "run_id": f"r{i}", **row} for i, row in enumerate(rows)])


def level_runs(column: str, level: str, values: list[float], metric: str = "ood_seq_acc"):
    return [{column: level, "seed": s, metric: v} for s, v in enumerate(values)]


def test_bootstrap_ci_of_one_value_is_that_value():
    assert bootstrap_ci([0.3]) == (0.3, 0.3)


def test_bootstrap_ci_of_no_values_is_nan():
    assert all(np.isnan(bootstrap_ci([])))


def test_bootstrap_ci_drops_nan():
    assert bootstrap_ci([0.2, np.nan, 0.2]) == (0.2, 0.2)


def test_bootstrap_ci_is_reproducible_for_a_seed():
    values = [0.1, 0.5, 0.9, 0.3]
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)


def test_bootstrap_ci_uses_the_given_statistic():
    low, high = bootstrap_ci([0.0, 0.0, 0.0, 1.0], stat=np.max)
    assert (low, high) == (0.0, 1.0)


@given(accuracies)
@settings(max_examples=50, deadline=None)
def test_bootstrap_ci_of_mean_is_ordered_and_inside_the_sample_range(values):
    low, high = bootstrap_ci(values, n_boot=200)
    assert min(values) - 1e-12 <= low <= high <= max(values) + 1e-12


def test_bootstrap_ci_narrower_than_range_for_spread_sample():
    low, high = bootstrap_ci([0.0] * 10 + [1.0] * 10)
    assert 0.2 < low < 0.5 < high < 0.8


def test_bootstrap_diff_ci_of_separated_constant_samples_is_their_difference():
    assert bootstrap_diff_ci([1.0, 1.0], [0.25, 0.25, 0.25]) == (0.75, 0.75)


def test_bootstrap_diff_ci_with_empty_side_is_nan():
    assert all(np.isnan(bootstrap_diff_ci([1.0], [])))


def test_cliffs_delta_matches_hand_count():
    # pairs (a, b): 1-0 +, 1-2 -, 2-0 +, 2-2 0, 3-0 +, 3-2 +  ->  (4 - 1) / 6
    assert cliffs_delta([1, 2, 3], [0, 2]) == pytest.approx(0.5)


@given(accuracies, accuracies)
@settings(max_examples=50, deadline=None)
def test_cliffs_delta_is_antisymmetric_and_bounded(a, b):
    assert -1 <= cliffs_delta(a, b) <= 1
    assert cliffs_delta(a, b) == pytest.approx(-cliffs_delta(b, a))


def test_summary_table_counts_diverged_and_excludes_them_from_means():
    runs = make_runs(
        {"seed": 0, "ood_seq_acc": 0.2},
        {"seed": 1, "ood_seq_acc": 0.6},
        {"seed": 2, "status": "diverged", "ood_seq_acc": np.nan},
        {"seed": 3, "status": "failed", "ood_seq_acc": np.nan},
    )
    row = summary_table(runs, ["task"]).iloc[0]
    assert (row["n_seeds"], row["n_diverged"], row["n_failed"]) == (2, 1, 1)
    assert row["ood_seq_acc_mean"] == pytest.approx(0.4)
    assert row["ood_seq_acc_max"] == pytest.approx(0.6)
    assert 0.2 <= row["ood_seq_acc_ci_low"] <= 0.4 <= row["ood_seq_acc_ci_high"] <= 0.6


def test_summary_table_has_one_row_per_group():
    runs = make_runs({"position": "rope"}, {"position": "alibi"}, {"position": "alibi", "seed": 1})
    table = summary_table(runs, ["task", "position"])
    assert table.set_index("position")["n_seeds"].to_dict() == {"alibi": 2, "rope": 1}


def test_accuracy_by_length_averages_runs_at_each_length():
    lengths = pd.DataFrame(
        {
            "run_id": ["a", "a", "b", "b"],
            "position": "rope",
            "length": [10, 30, 10, 30],
            "seq_acc": [1.0, 0.2, 0.8, 0.0],
            "token_acc": [1.0, 0.6, 0.9, 0.4],
            "in_distribution": [True, False, True, False],
        }
    )
    table = accuracy_by_length(lengths, ["position"]).set_index("length")
    assert table.loc[10, "seq_acc_mean"] == pytest.approx(0.9)
    assert table.loc[30, "token_acc_mean"] == pytest.approx(0.5)
    assert table["in_distribution"].to_dict() == {10: True, 30: False}
    assert table.loc[30, "seq_acc_ci_low"] <= 0.1 <= table.loc[30, "seq_acc_ci_high"]


def test_compare_pairs_runs_sharing_config_and_seed():
    runs = make_runs(
        *level_runs("position", "rope", [0.5, 0.6, 0.7]),
        *level_runs("position", "alibi", [0.4, 0.5, 0.6]),
    )
    result = compare(
        runs[runs.position == "rope"], runs[runs.position == "alibi"], "ood_seq_acc", ["seed"]
    )
    assert (result["test"], result["n_pairs"]) == ("wilcoxon", 3)
    assert (result["diff_ci_low"], result["diff_ci_high"]) == pytest.approx((0.1, 0.1))


def test_compare_falls_back_to_mann_whitney_without_shared_keys():
    a = make_runs(*level_runs("position", "rope", [1.0, 1.0, 1.0]))
    b = make_runs(*level_runs("position", "alibi", [0.0, 0.0, 0.0])).assign(seed=[7, 8, 9])
    result = compare(a, b, "ood_seq_acc", ["seed"])
    assert (result["test"], result["paired"], result["n_pairs"]) == ("mannwhitneyu", False, 0)
    assert result["cliffs_delta"] == 1.0
    assert result["p"] == pytest.approx(0.1, abs=0.01)  # exact two-sided p = 2/20


def test_compare_all_zero_differences_give_p_one():
    a = make_runs(*level_runs("position", "rope", [0.5, 0.5]))
    result = compare(a, a, "ood_seq_acc", ["seed"])
    assert (result["p"], result["mean_diff"]) == (1.0, 0.0)


def test_compare_with_empty_side_gives_nan_p():
    a = make_runs(*level_runs("position", "rope", [0.5, 0.5]))
    assert np.isnan(compare(a, a.iloc[:0], "ood_seq_acc", ["seed"])["p"])


def test_compare_ignores_diverged_runs():
    a = make_runs({"seed": 0, "ood_seq_acc": 0.5}, {"seed": 1, "status": "diverged"})
    b = make_runs({"seed": 0, "ood_seq_acc": 0.1}, {"seed": 1, "ood_seq_acc": 0.1})
    result = compare(a, b, "ood_seq_acc", ["seed"])
    assert (result["n_a"], result["paired"]) == (1, False)


def test_pairwise_comparisons_has_one_row_per_level_pair_and_cell():
    rows = [
        {"task": task, "position": pos, "seed": seed, "ood_seq_acc": seed / 10}
        for task in ("copy", "reverse")
        for pos in ("alibi", "rope", "t5")
        for seed in range(3)
    ]
    table = pairwise_comparisons(make_runs(*rows), "position", "ood_seq_acc", within=["task"])
    assert len(table) == 6
    assert set(zip(table.level_a, table.level_b, strict=True)) == {
        ("alibi", "rope"),
        ("alibi", "t5"),
        ("rope", "t5"),
    }
    assert (table["test"] == "wilcoxon").all()
    assert (table["p_holm"] == 1.0).all()


def test_holm_matches_hand_computation_and_keeps_nan():
    # sorted p: 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06
    adjusted = holm(np.array([0.01, 0.04, np.nan, 0.03]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, np.nan, 0.06])


def test_holm_correction_is_monotone_and_never_below_raw():
    # one call on many p-values: multipletests runs gc.collect() on every call
    raw = np.round(np.random.default_rng(0).uniform(0, 0.2, size=200), 3)  # rounding adds ties
    adjusted = holm(raw)
    order = np.argsort(raw, kind="stable")
    assert np.all(adjusted >= raw)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted <= 1)


def test_kruskal_p_degenerate_cases():
    same = make_runs(*level_runs("score", "dot", [0.5, 0.5]), *level_runs("score", "cosine", [0.5]))
    assert kruskal_p(same, "score", "ood_seq_acc") == 1.0
    assert np.isnan(kruskal_p(same[same.score == "dot"], "score", "ood_seq_acc"))


def test_kruskal_p_small_for_separated_groups():
    runs = make_runs(
        *level_runs("score", "dot", [0.9, 0.95, 1.0, 0.92]),
        *level_runs("score", "cosine", [0.1, 0.0, 0.05, 0.02]),
    )
    assert kruskal_p(runs, "score", "ood_seq_acc") < 0.05


def test_mean_reciprocal_rank_gives_ties_the_minimum_rank():
    means = {"copy": {"A": 0.9, "B": 0.5, "C": 0.5}, "reverse": {"A": 0.9, "B": 0.8, "C": 0.1}}
    rows = [
        {"task": task, "position": pos, "ood_seq_acc": acc}
        for task, by_pos in means.items()
        for pos, acc in by_pos.items()
    ]
    mrr = mean_reciprocal_rank(make_runs(*rows)).set_index("position")["mrr"]
    # copy ranks A1 B2 C2 (tie -> min); reverse ranks A1 B2 C3
    assert mrr.to_dict() == pytest.approx({"A": 1.0, "B": 0.5, "C": (1 / 2 + 1 / 3) / 2})
    assert list(mrr.index) == ["A", "B", "C"]


def test_mean_reciprocal_rank_averages_only_strata_where_level_ran():
    runs = make_runs(
        {"task": "copy", "position": "A", "ood_seq_acc": 0.1},
        {"task": "copy", "position": "B", "ood_seq_acc": 0.9},
        {"task": "sort", "position": "A", "ood_seq_acc": 0.5},
    )
    table = mean_reciprocal_rank(runs).set_index("position")
    assert table.loc["A", "mrr"] == pytest.approx(0.75)
    assert table["n_strata"].to_dict() == {"A": 2, "B": 1}


def test_length_trend_is_negative_for_falling_and_zero_for_flat_accuracy():
    lengths = pd.DataFrame(
        {
            "run_id": ["fall"] * 3 + ["flat"] * 3,
            "length": [5, 10, 20] * 2,
            "seq_acc": [1.0, 0.5, 0.1, 0.0, 0.0, 0.0],
        }
    )
    assert length_trend(lengths).to_dict() == {"fall": -1.0, "flat": 0.0}


def test_early_late_gap_compares_first_quarter_with_the_rest():
    positions = pd.DataFrame(
        {
            "run_id": "r",
            "split": ["id"] * 8,
            "target_pos": range(8),
            "token_acc": [0.2, 0.4, 1.0, 1.0, 0.8, 0.8, 0.6, 0.6],
        }
    )
    # first quarter = positions 0, 1 (mean 0.3); rest mean 0.8
    assert early_late_gap(positions)["r"] == pytest.approx(-0.5)


def test_methods_text_names_every_test_used():
    for name in ("Wilcoxon", "Mann-Whitney", "Holm", "bootstrap", "Cliff"):
        assert name in METHODS_TEXT
