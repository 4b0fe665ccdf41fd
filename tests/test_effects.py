"""The inference behind every verdict (analysis.effects): the exact sign-flip test over
seeds, its smallest p, the equivalence test, and the pairwise comparisons of the report's
tables (the same seed-level procedure). The calibration of the whole verdict procedure by
simulation is in test_power.py."""

import numpy as np
import pandas as pd
import pytest
from frames import level_runs, make_runs
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.analysis.aggregate import bootstrap_ci
from attnstudy.analysis.effects import (
    METHODS_TEXT,
    compare,
    equivalence_p,
    pairwise_comparisons,
    sign_flip_p,
    sign_flip_p_many,
    smallest_p,
    unit_effect,
)
from attnstudy.schema import OOD_SEQ_ACC

# --- the sign-flip test ------------------------------------------------------------------


def test_three_seeds_of_one_sign_give_a_quarter_whatever_the_size():
    assert sign_flip_p(np.array([0.001, 0.002, 0.003])) == 0.25
    assert sign_flip_p(np.array([0.9, 0.8, 0.7])) == 0.25
    assert smallest_p(3) == 0.25 and smallest_p(5) == 0.0625 and smallest_p(10) == 2 / 2**10


def test_no_difference_gives_p_one():
    assert sign_flip_p(np.zeros(5)) == 1.0


def test_one_sided_p_halves_the_two_sided_one_in_the_claimed_direction():
    d = np.array([0.3, 0.2, 0.4, 0.1, 0.5])
    assert sign_flip_p(d, "greater") == 1 / 32
    assert sign_flip_p(d, "less") == 1.0
    with pytest.raises(ValueError, match="alternative"):
        sign_flip_p(d, "bigger")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=9))
def test_p_is_at_least_the_smallest_p_and_symmetric_in_sign(values):
    d = np.array(values)
    p = sign_flip_p(d)
    assert smallest_p(d.size) - 1e-12 <= p <= 1.0
    assert p == pytest.approx(sign_flip_p(-d))


def test_many_rows_at_once_match_one_at_a_time():
    rows = np.random.default_rng(1).normal(size=(50, 6))
    one_by_one = [sign_flip_p(r) for r in rows]
    assert sign_flip_p_many(rows) == pytest.approx(one_by_one)


def test_equivalence_needs_every_seed_well_inside_the_margin_and_enough_seeds():
    assert equivalence_p(np.zeros(5), 0.05) == 1 / 32  # each one-sided test at its floor
    assert equivalence_p(np.zeros(3), 0.05) == 1 / 8  # 3 seeds cannot show equivalence
    assert equivalence_p(np.full(5, 0.06), 0.05) == 1.0


def test_the_interval_over_seeds_brackets_the_mean_and_is_a_point_when_seeds_agree():
    d = np.array([0.1, 0.2, 0.3, 0.4])
    low, high = bootstrap_ci(d)
    assert low <= d.mean() <= high
    assert bootstrap_ci(np.full(4, 0.2)) == pytest.approx((0.2, 0.2))


def test_a_seed_is_one_unit_however_many_configurations_it_ran():
    """Six configurations of three seeds, every difference positive: three units, p 0.25
    (the old procedure counted 18 and gave 0.001)."""
    rows = [
        {"config": c, "seed": s, "side": side, "value": v, "run_id": f"{c}{s}{side}"}
        for c in range(6)
        for s in range(3)
        for side, v in (("a", 0.9 + 0.01 * s), ("b", 0.1))
    ]
    effect = unit_effect(pd.DataFrame(rows), ["config", "seed"])
    assert (effect.n_seeds, effect.n_configs, effect.p, effect.min_p) == (3, 6, 0.25, 0.25)
    assert effect.seed_diffs == pytest.approx((0.8, 0.81, 0.82))


# --- the pairwise tables' comparisons: the same effect, Mann-Whitney without matched seeds ----


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
