"""What tracking (attnstudy.tracking) gives MLflow users, on hand-built inputs (the tiny
study in test_ui checks the logged runs): the seed that stands for a variant."""

from attnstudy.registries import make_config
from attnstudy.schema import BEST_VAL_NEXT_TOKEN_ACC, BEST_VAL_SEQ_ACC
from attnstudy.tracking import best_per_encoding


def summary(val: float) -> dict[str, float]:
    return {BEST_VAL_SEQ_ACC: val, BEST_VAL_NEXT_TOKEN_ACC: val}


def test_the_seed_with_the_best_validation_stands_for_its_variant_lowest_on_ties():
    rope = [make_config(position="rope", seed=s) for s in range(3)]
    best = best_per_encoding([(rope[0], summary(0.5)), (rope[1], summary(0.9))])
    assert best["rope"]["selected"] == (rope[1], summary(0.9))
    tied = best_per_encoding([(rope[2], summary(0.7)), (rope[1], summary(0.7))])
    assert tied["rope"]["selected"][0].seed == 1
