"""The summary numbers of an evaluation (attnstudy.evaluate.summarize)."""

import pytest

from attnstudy.evaluate import LengthResult, summarize
from attnstudy.schema import (
    EXTRAPOLATION_LEN,
    EXTRAPOLATION_LEN_50,
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    NEAR_OOD_SEQ_ACC,
    NEAR_OOD_TOKEN_ACC,
    OOD_SEQ_ACC,
)


def results(seq_acc) -> list[LengthResult]:
    """Lengths 1..32, exact match seq_acc(length), token accuracy the same."""
    return [LengthResult(n, 10, seq_acc(n), seq_acc(n), []) for n in range(1, 33)]


def test_summary_splits_in_distribution_near_and_every_length_beyond():
    s = summarize(results(lambda n: 1.0 if n <= 8 else 0.6 if n <= 16 else 0.0), 8)
    assert s[ID_SEQ_ACC] == s[ID_SEQ_ACC_AT_MAX] == 1.0
    assert s[NEAR_OOD_SEQ_ACC] == s[NEAR_OOD_TOKEN_ACC] == pytest.approx(0.6)
    assert s[OOD_SEQ_ACC] == pytest.approx(0.6 * 8 / 24)
    assert (s[EXTRAPOLATION_LEN], s[EXTRAPOLATION_LEN_50]) == (8, 16)


def test_extrapolation_lengths_stop_at_the_first_length_below_their_threshold():
    s = summarize(results(lambda n: 1.0 if n <= 8 else 0.7 if n != 10 else 0.4), 8)
    assert (s[EXTRAPOLATION_LEN], s[EXTRAPOLATION_LEN_50]) == (8, 9)
