"""The inference behind every verdict (analysis.effects): the exact sign-flip test over
seeds, its smallest p, the equivalence test and the seed as the unit. The calibration of
the whole verdict procedure by simulation is in test_power.py."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.analysis.aggregate import bootstrap_ci
from attnstudy.analysis.effects import (
    equivalence_p,
    sign_flip_p,
    sign_flip_p_many,
    smallest_p,
    unit_effect,
)

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
