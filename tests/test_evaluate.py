"""The summary numbers of an evaluation (attnstudy.evaluate.summarize)."""

import pytest

from attnstudy.evaluate import LengthResult, summarize


def results(seq_acc) -> list[LengthResult]:
    """Lengths 1..32, exact match seq_acc(length), token accuracy the same."""
    return [LengthResult(n, 10, seq_acc(n), seq_acc(n), []) for n in range(1, 33)]


def test_summary_splits_in_distribution_near_and_every_length_beyond():
    s = summarize(results(lambda n: 1.0 if n <= 8 else 0.6 if n <= 16 else 0.0), 8)
    assert s["id_seq_acc"] == s["id_seq_acc_at_max"] == 1.0
    assert s["near_ood_seq_acc"] == s["near_ood_token_acc"] == pytest.approx(0.6)
    assert s["ood_seq_acc"] == pytest.approx(0.6 * 8 / 24)
    assert (s["extrapolation_len"], s["extrapolation_len_50"]) == (8, 16)


def test_extrapolation_lengths_stop_at_the_first_length_below_their_threshold():
    s = summarize(results(lambda n: 1.0 if n <= 8 else 0.7 if n != 10 else 0.4), 8)
    assert (s["extrapolation_len"], s["extrapolation_len_50"]) == (8, 9)
