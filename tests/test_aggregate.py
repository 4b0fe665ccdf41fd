"""Tests of analysis.aggregate on tiny hand-computed frames."""

import numpy as np
import pandas as pd
import pytest
from frames import level_runs, make_runs
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.analysis import load
from attnstudy.analysis.aggregate import (
    bootstrap_ci,
    bootstrap_diff_ci,
    cliffs_delta,
    extrapolation_lengths,
    holm,
    kruskal_p,
    length_trend,
    long_length_accuracy,
    mean_reciprocal_rank,
    source_position_gap,
)
from attnstudy.analysis.effects import near_ood_accuracy
from attnstudy.evaluate import LengthResult, position_metric, position_table
from attnstudy.schema import NEAR_OOD_SEQ_ACC, OOD_SEQ_ACC

accuracies = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12)


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
    assert kruskal_p(same, "score", OOD_SEQ_ACC) == 1.0
    assert np.isnan(kruskal_p(same[same.score == "dot"], "score", OOD_SEQ_ACC))


def test_kruskal_p_small_for_separated_groups():
    runs = make_runs(
        *level_runs("score", "dot", [0.9, 0.95, 1.0, 0.92]),
        *level_runs("score", "cosine", [0.1, 0.0, 0.05, 0.02]),
    )
    assert kruskal_p(runs, "score", OOD_SEQ_ACC) < 0.05


def test_mean_reciprocal_rank_gives_ties_the_minimum_rank():
    means = {"copy": {"A": 0.9, "B": 0.5, "C": 0.5}, "reverse": {"A": 0.9, "B": 0.8, "C": 0.1}}
    rows = [
        {"task": task, "position": pos, OOD_SEQ_ACC: acc}
        for task, by_pos in means.items()
        for pos, acc in by_pos.items()
    ]
    mrr = mean_reciprocal_rank(make_runs(*rows)).set_index("position")["mrr"]
    # copy ranks A1 B2 C2 (tie -> min); reverse ranks A1 B2 C3
    assert mrr.to_dict() == pytest.approx({"A": 1.0, "B": 0.5, "C": (1 / 2 + 1 / 3) / 2})
    assert list(mrr.index) == ["A", "B", "C"]


def test_mean_reciprocal_rank_averages_only_strata_where_level_ran():
    runs = make_runs(
        {"task": "copy", "position": "A", OOD_SEQ_ACC: 0.1},
        {"task": "copy", "position": "B", OOD_SEQ_ACC: 0.9},
        {"task": "sort", "position": "A", OOD_SEQ_ACC: 0.5},
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


def length_results(accuracy, lengths=range(1, 17)) -> list[LengthResult]:
    """Per-length results whose token accuracy at target position i of length L is
    ``accuracy(i, L)``."""
    results = []
    for n in lengths:
        acc = [accuracy(i, n) for i in range(n)]
        results.append(LengthResult(n, 1, float(np.mean(acc)), float(min(acc)), acc))
    return results


def position_frame(results: list[LengthResult], train_max_len: int) -> pd.DataFrame:
    """``position_table`` rows as analysis.load reads them back."""
    return pd.DataFrame(position_table(results, train_max_len)).assign(run_id="r")


def test_position_table_keeps_every_in_distribution_length_and_position():
    rows = position_table(length_results(lambda i, n: i / n, range(1, 7)), train_max_len=4)
    in_dist = [(r["length"], r["target_pos"]) for r in rows if r["split"] == "id"]
    assert in_dist == [(n, i) for n in range(1, 5) for i in range(n)]
    ood = [r for r in rows if r["split"] == "ood"]
    assert [r["target_pos"] for r in ood] == list(range(6))
    assert ood[0]["token_acc"] == pytest.approx(0.0) and ood[5]["length"] is None


def test_position_rows_survive_the_mlflow_round_trip():
    rows = position_table(length_results(lambda i, n: i / n, range(1, 7)), train_max_len=4)
    logged = [(*position_metric(r), r["token_acc"]) for r in rows]
    histories = pd.DataFrame(
        [("r", key, step, value) for key, step, value in logged],
        columns=["run_id", "key", "step", "value"],
    )
    config = pd.DataFrame({"run_id": ["r"], "task": ["copy"]})
    frame = load._positions(histories, config)
    back = frame[["split", "length", "target_pos", "token_acc"]].to_dict("records")
    assert len(back) == len(rows)
    for got, row in zip(back, rows, strict=True):
        assert (got["split"], got["target_pos"], got["token_acc"]) == (
            row["split"],
            row["target_pos"],
            pytest.approx(row["token_acc"]),
        )
        assert got["length"] == row["length"] or (np.isnan(got["length"]) and row["length"] is None)


def test_accuracy_that_depends_only_on_length_shows_no_early_late_gap():
    # issue 10 item 11: averaging position p over every length > p scored this +0.28
    results = length_results(lambda i, n: max(0.0, 1.2 - n / 10))
    assert source_position_gap(position_frame(results, 16))["r"] == pytest.approx(0.0)


def test_earliest_positions_worse_within_each_length_is_a_negative_gap():
    # 0.5 on the first half of every length, 1.0 on the rest
    results = length_results(lambda i, n: 0.5 if i < n / 2 else 1.0)
    assert source_position_gap(position_frame(results, 16))["r"] == pytest.approx(-0.5)


def test_reverse_maps_target_positions_to_mirrored_input_positions():
    results = length_results(lambda i, n: 0.5 if i >= n / 2 else 1.0)  # late targets fail
    frame = position_frame(results, 16)
    assert source_position_gap(frame, mirrored=True)["r"] == pytest.approx(-0.5)
    assert source_position_gap(frame)["r"] == pytest.approx(0.5)


def test_position_gap_uses_only_in_distribution_lengths():
    results = length_results(lambda i, n: 0.0 if n > 8 and i < n / 2 else 1.0)
    assert source_position_gap(position_frame(results, 8))["r"] == pytest.approx(0.0)


def test_long_length_accuracy_averages_the_longer_half_of_training_lengths():
    lengths = pd.DataFrame({"run_id": "r", "length": range(1, 13), "train_max_len": 8}).assign(
        seq_acc=lambda f: np.where(f["length"] <= 4, 1.0, 0.25)
    )
    assert long_length_accuracy(lengths)["r"] == pytest.approx(0.25)


def test_near_ood_accuracy_averages_lengths_past_training_up_to_twice_it_where_not_logged():
    lengths = pd.DataFrame({"run_id": "r", "length": range(1, 33), "train_max_len": 8}).assign(
        seq_acc=lambda f: np.select([f["length"] <= 8, f["length"] <= 16], [1.0, 0.5], 0.0)
    )
    runs = pd.DataFrame({"run_id": ["r", "r"], NEAR_OOD_SEQ_ACC: [np.nan, 0.75]})
    assert near_ood_accuracy(runs, lengths).tolist() == [0.5, 0.75]  # 9..16 (not 9..32); logged
    assert near_ood_accuracy(runs[["run_id"]], lengths).tolist() == [0.5, 0.5]  # never logged


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.sampled_from([0.5, 0.9]))
def test_extrapolation_length_is_the_last_length_before_the_first_miss(accs, threshold):
    lengths = pd.DataFrame({"run_id": "r", "length": range(1, len(accs) + 1), "seq_acc": accs})
    misses = [n for n, acc in enumerate(accs, 1) if acc < threshold]
    expected = misses[0] - 1 if misses else len(accs)
    shuffled = lengths.sample(frac=1, random_state=0)  # the frame's order does not matter
    assert extrapolation_lengths(shuffled, threshold)["r"] == expected
