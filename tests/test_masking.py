"""A query that may see no key (left padding in a causal model) weighs every key 0: its
attention output is a zero row, not NaN, for every score and every encoding, and rows that
see a key are computed exactly as before."""

import itertools

import pytest
import torch
from builders import TINY_MODEL
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.archs import build_model
from attnstudy.model import MultiHeadAttention, record_attention
from attnstudy.positions import POSITIONS, position_ids
from attnstudy.registries import make_config
from attnstudy.scores import SCORES
from attnstudy.tasks import PAD, build_task

PAIRS = list(itertools.product(SCORES, POSITIONS))


def decoder(score: str, position: str, randomized: bool):
    cfg = make_config(
        arch="decoder", score=score, position=position, randomized=randomized, **TINY_MODEL
    )
    model = build_model(cfg, build_task("copy", cfg.eval_max_len))
    for p in model.transformer.encoding.parameters():
        if not p.any():  # T5 biases, CoPE embeddings start at zero: make them informative
            p.data.normal_()
    return model


def left_pad(lens: torch.Tensor, width: int, random_range: int):
    """Tokens, position ids and key padding (B, width) of sequences of lengths lens, each
    right-aligned after PAD columns; a real token gets the id it would get alone."""
    gen = torch.Generator().manual_seed(0)
    ids = position_ids(lens, random_range, gen, torch.device("cpu")).expand(len(lens), -1)
    real = torch.randint(4, 14, (len(lens), width), generator=gen)
    pad = torch.arange(width)[None, :] < (width - lens)[:, None]
    tokens, pos = real.masked_fill(pad, PAD), torch.zeros(len(lens), width, dtype=torch.long)
    for b, n in enumerate(lens.tolist()):
        pos[b, width - n :] = ids[b, :n]
    return tokens, pos, pad


def attention_outputs(model, call) -> list[torch.Tensor]:
    """What every attention layer hands its output projection, weights @ v (B, Tq, d)."""
    seen = []
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    handles = [
        m.out.register_forward_pre_hook(lambda _, args: seen.append(args[0])) for m in layers
    ]
    try:
        call()
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("score,position", PAIRS)
@given(
    lens=st.lists(st.integers(1, 8), min_size=2, max_size=3),
    extra=st.integers(1, 4),
    fused=st.booleans(),
    randomized=st.booleans(),
)
@settings(max_examples=4, deadline=None)
def test_a_query_that_sees_no_key_gives_a_zero_row_and_no_nan(
    score, position, lens, extra, fused, randomized
):
    """Left-padded causal batch: every padding query sees only padding keys. Its weights and
    its attention output are zero rows in every layer, nothing is NaN, gradients are finite,
    and each real token's output equals that of its sequence alone. `fused`: long enough
    for the softmax scores' fused kernel (above CPU_EXPLICIT_MAX_LOGITS)."""
    randomized = randomized and POSITIONS[position].takes_position_ids
    torch.manual_seed(0)
    model = decoder(score, position, randomized)
    lens = torch.tensor(lens) + (24 if fused else 0)  # 25² > CPU_EXPLICIT_MAX_LOGITS
    tokens, pos, pad = left_pad(lens, int(lens.max()) + extra, model.random_range)
    transformer = model.transformer
    with record_attention(model) as weights:
        outputs = attention_outputs(model, lambda: transformer(tokens, pos, key_pad=pad))
    hidden = transformer(tokens, pos, key_pad=pad)
    for w, y in zip(weights, outputs, strict=True):
        assert (w.transpose(1, 2)[pad] == 0).all() and (y[pad] == 0).all()
    assert hidden.isfinite().all()
    hidden.sum().backward()
    assert all(p.grad.isfinite().all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        for b, n in enumerate(lens.tolist()):
            alone = transformer(tokens[b : b + 1, -n:], pos[b : b + 1, -n:])
            torch.testing.assert_close(hidden[b : b + 1, -n:].detach(), alone)


@pytest.mark.parametrize("score", SCORES)
@given(T=st.integers(2, 30))
@settings(max_examples=5, deadline=None)
def test_rows_that_see_a_key_are_bit_identical_beside_a_blind_row(score, T):
    """Blinding query 0 (masking its one key) zeroes its row and changes no other weight by
    a bit; for a softmax score every other row is exactly torch.softmax(logits + bias)."""
    torch.manual_seed(T)
    layer = SCORES[score](d_head=8, heads=2)
    logits = torch.randn(2, 2, T, T)
    seeing = torch.full((T, T), float("-inf")).triu(1) + torch.randn(T, T)
    blind = seeing.clone()
    blind[0, 0] = float("-inf")
    with torch.no_grad():
        w, before = layer.weights(logits, blind), layer.weights(logits, seeing)
    assert (w[:, :, 0] == 0).all()
    assert torch.equal(w[:, :, 1:], before[:, :, 1:])
    if layer.softmax:
        assert torch.equal(w[:, :, 1:], torch.softmax(logits + blind, -1)[:, :, 1:])
