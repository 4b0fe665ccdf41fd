"""The report's pairwise tables (analysis.pairwise): the claims' seed-level effect where
seeds match, Mann-Whitney over per-seed means where they do not, Holm within a table."""

import numpy as np
import pytest
from frames import level_runs, make_runs

from attnstudy.analysis.pairwise import METHODS_TEXT, compare, pairwise_comparisons
from attnstudy.schema import OOD_SEQ_ACC


def test_compare_pairs_runs_sharing_config_and_seed():
    runs = make_runs(
        *level_runs("position", "rope", [0.5, 0.6, 0.7]),
        *level_runs("position", "alibi", [0.4, 0.5, 0.6]),
    )
    result = compare(
        runs[runs.position == "rope"], runs[runs.position == "alibi"], OOD_SEQ_ACC, ["seed"]
    )
    assert (result["test"], result["n_seeds"]) == ("sign-flip", 3)
    assert result["p"] == result["min_p"] == 0.25  # three seeds can never reject
    assert (result["diff_ci_low"], result["diff_ci_high"]) == pytest.approx((0.1, 0.1))


def test_compare_falls_back_to_mann_whitney_without_shared_keys():
    a = make_runs(*level_runs("position", "rope", [1.0, 1.0, 1.0]))
    b = make_runs(*level_runs("position", "alibi", [0.0, 0.0, 0.0])).assign(seed=[7, 8, 9])
    result = compare(a, b, OOD_SEQ_ACC, ["seed"])
    assert (result["test"], result["paired"], result["n_seeds"]) == ("mannwhitneyu", False, 0)
    assert result["cliffs_delta"] == 1.0
    assert result["p"] == pytest.approx(0.1, abs=0.01)  # exact two-sided p = 2/20


def test_compare_states_the_smallest_p_its_test_could_give_at_these_sample_sizes():
    """Five seeds paired: no data can push the exact two-sided sign-flip p below 2/2^5;
    three seeds against three unpaired: none below 2/C(6, 3) = 0.1."""
    a = make_runs(*level_runs("position", "rope", [0.6, 0.7, 0.8, 0.9, 1.0]))
    b = make_runs(*level_runs("position", "alibi", [0.5, 0.5, 0.5, 0.5, 0.5]))
    paired = compare(a, b, OOD_SEQ_ACC, ["seed"])
    assert paired["min_p"] == pytest.approx(0.0625)
    assert paired["p"] == pytest.approx(paired["min_p"])  # five of five differences positive
    unpaired = compare(a.iloc[:3], b.iloc[:3].assign(seed=[7, 8, 9]), OOD_SEQ_ACC, ["seed"])
    assert unpaired["min_p"] == pytest.approx(0.1)
    many = compare(
        make_runs(*level_runs("position", "rope", [0.1 * i for i in range(10)])),
        make_runs(*level_runs("position", "alibi", [0.0] * 10)),
        OOD_SEQ_ACC,
        ["seed"],
    )
    assert many["min_p"] == pytest.approx(2 / 2**10)


def test_compare_all_zero_differences_give_p_one():
    a = make_runs(*level_runs("position", "rope", [0.5, 0.5]))
    result = compare(a, a, OOD_SEQ_ACC, ["seed"])
    assert (result["p"], result["mean_diff"]) == (1.0, 0.0)


def test_compare_with_empty_side_gives_nan_p():
    a = make_runs(*level_runs("position", "rope", [0.5, 0.5]))
    assert np.isnan(compare(a, a.iloc[:0], OOD_SEQ_ACC, ["seed"])["p"])


def test_compare_ignores_diverged_runs():
    a = make_runs({"seed": 0, OOD_SEQ_ACC: 0.5}, {"seed": 1, "status": "diverged"})
    b = make_runs({"seed": 0, OOD_SEQ_ACC: 0.1}, {"seed": 1, OOD_SEQ_ACC: 0.1})
    result = compare(a, b, OOD_SEQ_ACC, ["seed"])
    assert (result["n_a"], result["paired"]) == (1, False)


def test_pairwise_comparisons_has_one_row_per_level_pair_and_cell():
    rows = [
        {"task": task, "position": pos, "seed": seed, OOD_SEQ_ACC: seed / 10}
        for task in ("copy", "reverse")
        for pos in ("alibi", "rope", "t5")
        for seed in range(3)
    ]
    table = pairwise_comparisons(make_runs(*rows), "position", OOD_SEQ_ACC, within=["task"])
    assert len(table) == 6
    assert set(zip(table.level_a, table.level_b, strict=True)) == {
        ("alibi", "rope"),
        ("alibi", "t5"),
        ("rope", "t5"),
    }
    assert (table["test"] == "sign-flip").all()
    assert (table["p_holm"] == 1.0).all()


def test_compare_counts_seeds_not_configurations():
    """Six configurations of three seeds, every difference positive: three units and
    p 0.25, where pairing by configuration and seed counted 18 pairs and gave p 0.004."""
    rows = [
        {"heads": h, "position": p, "seed": s, OOD_SEQ_ACC: acc + 0.01 * s}
        for h in (1, 2, 3, 4, 5, 6)
        for s in range(3)
        for p, acc in (("rope", 0.9), ("alibi", 0.1))
    ]
    runs = make_runs(*rows)
    rope, alibi = runs[runs.position == "rope"], runs[runs.position == "alibi"]
    result = compare(rope, alibi, OOD_SEQ_ACC, ["heads", "seed"])
    assert (result["n_seeds"], result["p"], result["min_p"]) == (3, 0.25, 0.25)


def test_compare_interval_resamples_seeds_within_configurations():
    # rope − alibi is 0.5 at 2 heads and 1.0 at 4 heads, in every seed
    rows = [
        {"heads": h, "position": p, "seed": s, OOD_SEQ_ACC: acc * h / 4}
        for h in (2, 4)
        for s in range(3)
        for p, acc in (("rope", 1.0), ("alibi", 0.0))
    ]
    runs = make_runs(*rows)
    rope, alibi = runs[runs.position == "rope"], runs[runs.position == "alibi"]
    result = compare(rope, alibi, OOD_SEQ_ACC, ["heads", "seed"])
    assert (result["diff_ci_low"], result["diff_ci_high"]) == pytest.approx((0.75, 0.75))


def test_compare_estimate_weights_configurations_as_its_interval_does():
    # found in the replicate-deletang report: a configuration with 3 seeds and one with 1
    # gave a mean difference of 63.2 outside its own interval [59.8, 62.3]; the estimate
    # must weigh what the interval weighs: each seed's mean over its configurations
    rows = [
        {"heads": h, "position": p, "seed": s, OOD_SEQ_ACC: acc}
        for h, seeds, gain in ((2, range(3), 0.2), (4, range(1), 1.0))
        for s in seeds
        for p, acc in (("rope", gain), ("alibi", 0.0))
    ]
    runs = make_runs(*rows)
    rope, alibi = runs[runs.position == "rope"], runs[runs.position == "alibi"]
    result = compare(rope, alibi, OOD_SEQ_ACC, ["heads", "seed"])
    assert result["mean_diff"] == pytest.approx((0.6 + 0.2 + 0.2) / 3)
    assert result["mean_a"] - result["mean_b"] == pytest.approx(result["mean_diff"])
    assert result["diff_ci_low"] <= result["mean_diff"] <= result["diff_ci_high"]


def test_methods_text_names_every_test_used():
    for name in ("sign-flip", "Mann-Whitney", "Holm", "bootstrap", "Cliff"):
        assert name in METHODS_TEXT
