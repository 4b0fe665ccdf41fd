"""The length-aware variants against their papers' definitions: sigmoid attention
(Ramapuram et al. 2024), scalable softmax (Nakanishi 2025), FIRE (Li et al. 2024) and CoPE
(Golovneva et al. 2024). Causality, padding, shift invariance and fused == explicit are
checked for them with every other variant in test_attention.py."""

import math

import pytest
import torch
from builders import TINY_MODEL
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.evaluate import head_diversity
from attnstudy.positions import POSITIONS, fire_psi
from attnstudy.registries import make_config
from attnstudy.scores import SCORES, visible_keys


def causal_mask(T: int) -> torch.Tensor:
    return torch.full((T, T), float("-inf")).triu(1)


@given(T=st.integers(1, 40))
@settings(max_examples=10, deadline=None)
def test_visible_keys_counts_what_each_causal_row_may_see(T):
    logits = torch.zeros(1, 1, T, T)
    assert visible_keys(logits, causal_mask(T)).flatten().tolist() == list(range(1, T + 1))
    assert visible_keys(logits, None).item() == T


@given(T=st.integers(1, 40))
@settings(max_examples=10, deadline=None)
def test_sigmoid_weighs_a_uniform_row_one_over_n_plus_one_and_masked_keys_zero(T):
    """σ(0 − log n) = 1/(n + 1) on each of the n visible keys, 0 on the masked ones, so a
    uniform row sums to n/(n + 1) at every length."""
    score = SCORES["sigmoid"](d_head=8, heads=1)
    w = score.weights(torch.zeros(1, 1, T, T), causal_mask(T))[0, 0]
    n = torch.arange(1, T + 1, dtype=torch.float)[:, None]
    expected = torch.where(torch.ones(T, T).tril().bool(), 1 / (n + 1), torch.zeros(()))
    torch.testing.assert_close(w, expected)


def test_sigmoid_is_elementwise_with_the_length_bias():
    torch.manual_seed(0)
    score = SCORES["sigmoid"](d_head=8, heads=2)
    logits, bias = torch.randn(3, 2, 5, 7), torch.randn(5, 7)
    expected = torch.sigmoid(logits + bias - math.log(7))
    torch.testing.assert_close(score.weights(logits, bias), expected)


@given(n=st.integers(2, 4096))
@settings(max_examples=20, deadline=None)
def test_ssmax_keeps_attention_on_a_standout_key_as_n_grows(n):
    """One key one logit above n − 1 others: softmax gives it e/(e + n − 1) → 0, scalable
    softmax (s = 1) gives it n/(2n − 1) → 1/2 at every n (Nakanishi 2025, fading)."""
    score = SCORES["ssmax"](d_head=8, heads=1)
    logits = torch.zeros(1, 1, 1, n, dtype=torch.float64)
    logits[..., 0] = 1.0
    top = score.weights(logits, None)[0, 0, 0, 0].item()
    assert top == pytest.approx(n / (2 * n - 1))


def test_ssmax_scales_each_causal_row_by_the_log_of_its_visible_keys_and_learns_s():
    torch.manual_seed(0)
    score = SCORES["ssmax"](d_head=8, heads=2)
    score.s.data = torch.tensor([0.5, 2.0])[:, None, None]
    logits, T = torch.randn(1, 2, 6, 6), 6
    w = score.weights(logits, causal_mask(T))
    for h, s in enumerate((0.5, 2.0)):
        for i in range(T):
            row = torch.softmax(s * math.log(i + 1) * logits[0, h, i, : i + 1], -1)
            torch.testing.assert_close(w[0, h, i, : i + 1], row)
    (w[..., 0] * torch.arange(6.0)).sum().backward()
    assert score.s.grad is not None and score.s.grad.abs().sum() > 0


def fire(**settings):
    cfg = make_config(position="fire", **(TINY_MODEL | settings))
    return POSITIONS["fire"](cfg, max_positions=200, trained_positions=20)


def test_fire_input_is_the_log_distance_over_the_log_threshold_within_training():
    """ψ(i − j)/ψ(max(i, L)) with ψ(x) = log(c·x + 1), c = 0.1, L = 20 (the trained
    positions) at initialisation; direction 0 for every key a causal query sees."""
    enc = fire()
    pos = torch.arange(20)[None]
    feats = enc.features(pos, pos)[0]
    i, j = torch.arange(20)[:, None], torch.arange(20)[None, :]
    psi = torch.log(0.1 * (i - j).abs().float() + 1) / (math.log(0.1 * 20 + 1) + enc.eps)
    torch.testing.assert_close(feats[..., 0], psi)
    torch.testing.assert_close(feats[..., 1], (j > i).float())
    torch.testing.assert_close(
        fire_psi(torch.tensor(3.0), torch.tensor(-0.1)), torch.log1p(torch.tensor(0.3))
    )


def test_fire_bias_is_relative_within_training_and_interpolated_beyond():
    """Below the threshold L the normaliser is constant: the bias depends on i − j only.
    Beyond it the query position normalises the distance, so the same i − j gets another
    bias (the interpolation that makes FIRE not shift-invariant)."""
    torch.manual_seed(0)
    enc = fire()
    near = enc.context(torch.arange(8)[None], torch.arange(8)[None], True).bias
    moved = enc.context(torch.arange(8)[None] + 5, torch.arange(8)[None] + 5, True).bias
    far = enc.context(torch.arange(8)[None] + 60, torch.arange(8)[None] + 60, True).bias
    torch.testing.assert_close(near, moved)
    assert not torch.allclose(near, far, atol=1e-4)
    assert near.shape == (1, 2, 8, 8)


def cope(**settings):
    cfg = make_config(position="cope", **(TINY_MODEL | settings))
    enc = POSITIONS["cope"](cfg, max_positions=200, trained_positions=20)
    torch.manual_seed(0)
    for table in (enc.before, enc.after):
        table.data.normal_()
    return enc


@pytest.mark.parametrize("gate,expected", [(1.0, lambda d: d + 1), (0.0, lambda d: 0 * d)])
def test_cope_counts_keys_whose_gate_opens(gate, expected):
    """Gates all open: p_ij = i − j + 1 (every key from j to i counts), the term is
    q_i·e[i − j + 1]; gates all shut: p_ij = 0, the term is q_i·e[0]. Bidirectional: keys
    after the query count from i to j, with the second table."""
    enc = cope()
    T, sign = 7, 1.0 if gate else -1.0
    q = torch.full((1, 2, T, 8), sign * 30.0)  # q·k/√d = ±30·30·8/√8: gates 1 or 0
    k = torch.full((1, 2, T, 8), 30.0)
    d = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # i − j
    past = expected(d.clamp(min=0))
    future = expected((-d).clamp(min=0))
    want_before = (q @ enc.before.T).gather(-1, past.expand(1, 2, T, T))
    want_after = (q @ enc.after.T).gather(-1, future.expand(1, 2, T, T))
    causal = enc.logits(q, k, causal=True)
    both = enc.logits(q, k, causal=False)
    lower = d >= 0
    torch.testing.assert_close(causal[..., lower], want_before[..., lower])
    torch.testing.assert_close(both[..., lower], want_before[..., lower])
    torch.testing.assert_close(both[..., ~lower], want_after[..., ~lower])


def test_cope_interpolates_fractional_positions_and_clamps_at_npos():
    """Half-open gates give p_ij = (i − j + 1)/2, between two embeddings; beyond npos the
    count is clamped to the last one."""
    enc = cope()
    q = torch.randn(1, 1, 60, 8)
    k = torch.zeros(1, 1, 60, 8)  # σ(0) = 1/2
    term = enc.logits(q, k, causal=True)[0, 0]
    qe = (q @ enc.before.T)[0, 0]  # (Tq, npos + 1)
    i, j = 9, 2  # p = 4
    torch.testing.assert_close(term[i, j], qe[i, 4])
    i, j = 9, 3  # p = 3.5
    torch.testing.assert_close(term[i, j], (qe[i, 3] + qe[i, 4]) / 2)
    assert enc.npos == 20
    torch.testing.assert_close(term[59, 0], qe[59, 20])  # p = 30, clamped


def test_cope_queries_are_the_last_keys_when_decoding_incrementally():
    """One new query over a cache of keys: its term equals the last row of the full one."""
    enc = cope()
    q, k = torch.randn(1, 2, 9, 8), torch.randn(1, 2, 9, 8)
    full = enc.logits(q, k, causal=True)
    last = enc.logits(q[:, :, -1:], k, causal=True)
    torch.testing.assert_close(last, full[:, :, -1:])


def test_new_variants_declare_their_facts():
    assert POSITIONS["fire"].family == "relative" and POSITIONS["fire"].takes_position_ids
    assert not POSITIONS["fire"].shift_invariant(SCORES["scaled_dot"])
    assert POSITIONS["cope"].family == "contextual" and not POSITIONS["cope"].takes_position_ids
    assert not SCORES["sigmoid"].softmax and not SCORES["ssmax"].softmax
    assert all(
        cls.modern
        for cls in (*SCORES.values(), *POSITIONS.values())
        if cls.name in ("sigmoid", "ssmax", "fire", "cope")
    )


def test_head_diversity_compares_rows_as_distributions_whatever_they_sum_to():
    """Sigmoid rows need not sum to 1: heads that differ only in scale attend alike."""
    torch.manual_seed(0)
    rows = torch.rand(1, 5, 7)
    assert head_diversity(torch.cat([rows, 0.3 * rows])) == pytest.approx(0.0, abs=1e-6)
    other = torch.rand(1, 5, 7)
    assert head_diversity(torch.cat([rows, other])) == pytest.approx(
        head_diversity(torch.cat([rows / rows.sum(-1, keepdim=True), 2 * other]))
    )
