"""Properties of the attention maths: every combination trains, causality, padding,
translation invariance of relative encodings, fused == explicit."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.archs import ARCHS, build_model
from attnstudy.config import ConfigError, make_config
from attnstudy.positions import NO_POSITIONS, POSITIONS
from attnstudy.scores import CPU_EXPLICIT_MAX_LOGITS, SCORES, AdditiveScore, softmax_attention
from attnstudy.tasks import build_task, sample_lengths

TINY = dict(d_model=16, heads=2, n_layers=2, train_max_len=6)
RELATIVE = ("relative", "t5", "rope", "alibi")
ABSOLUTE = ("sinusoidal", "learned")


def valid_configs():
    for arch, score, position in itertools.product(ARCHS, SCORES, POSITIONS):
        try:
            yield make_config(arch=arch, score=score, position=position, **TINY)
        except ConfigError:
            continue  # e.g. RNN architectures take no position encoding (tested elsewhere)


@pytest.mark.parametrize(
    "cfg", list(valid_configs()), ids=lambda c: f"{c.arch}-{c.score}-{c.position}"
)
def test_every_combination_has_finite_gradients(cfg):
    task = build_task(cfg.task, cfg.resolved_eval_max_len)
    model = build_model(cfg, task)
    gen = torch.Generator().manual_seed(0)
    loss = model.loss(task.sample(sample_lengths(1, 6, 4, gen), gen), gen)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads
    assert all(torch.isfinite(g).all() for g in grads)
    # greedy prediction has the target's shape at a length beyond training
    batch = task.sample(torch.full((2,), 9), gen)
    assert model.predict(batch, gen).shape == batch.targets.shape


def transformer(arch, score, position, randomized=False):
    cfg = make_config(arch=arch, score=score, position=position, randomized=randomized, **TINY)
    return build_model(cfg, build_task("copy", cfg.resolved_eval_max_len)).transformer.eval()


@pytest.mark.parametrize("score,position", list(itertools.product(SCORES, POSITIONS)))
def test_causal_outputs_ignore_future_tokens(score, position):
    model = transformer("decoder", score, position)
    tokens = torch.randint(4, 14, (2, 12))
    pos = torch.arange(12).expand(2, 12)
    changed = tokens.clone()
    changed[:, 7:] = torch.randint(4, 14, (2, 5))
    with torch.no_grad():
        a, b = model(tokens, pos), model(changed, pos)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("score,position", list(itertools.product(SCORES, POSITIONS)))
def test_real_token_outputs_ignore_padding_length(score, position):
    model = transformer("encoder", score, position)
    tokens = torch.randint(4, 14, (2, 6))
    padded = torch.cat([tokens, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    pad = torch.arange(11)[None, :] >= 6
    with torch.no_grad():
        a = model(tokens, torch.arange(6).expand(2, 6))
        b = model(padded, torch.arange(11).expand(2, 11), key_pad=pad.expand(2, 11))
    torch.testing.assert_close(a, b[:, :6])


def attention_logits(score: str, position: str, shift: int) -> torch.Tensor:
    """First-layer logits (with positional bias) for one fixed input at positions + shift."""
    torch.manual_seed(0)
    model = transformer("encoder", score, position)
    for p in model.encoding.parameters():
        p.data.normal_()  # T5 biases start at zero: make them informative
    layer = model.blocks[0].self_attn
    x = torch.randn(1, 8, 16)
    pos = torch.arange(8)[None, :] + shift
    h = model.encoding.embed(x, pos)
    ctx = model.encoding.context(pos, pos, causal=False)
    q, k = layer._split(layer.query(h)), layer._split(layer.key_value(h)[..., :16])
    logits = layer.score.logits(q, k, ctx)
    return logits if ctx.bias is None else logits + ctx.bias


def translation_cases():
    for score, position in itertools.product(SCORES, RELATIVE):
        if not (position == "rope" and score == "additive"):  # tanh(W1 R_i q + W2 R_j k)
            yield score, position


@pytest.mark.parametrize("score,position", list(translation_cases()))
@given(shift=st.integers(1, 40))
@settings(max_examples=5, deadline=None)
def test_relative_logits_invariant_to_shift(score, position, shift):
    torch.testing.assert_close(
        attention_logits(score, position, 0),
        attention_logits(score, position, shift),
        atol=1e-4,
        rtol=1e-4,
    )


@pytest.mark.parametrize("score,position", list(itertools.product(SCORES, ABSOLUTE)))
def test_absolute_logits_change_with_shift(score, position):
    assert not torch.allclose(
        attention_logits(score, position, 0), attention_logits(score, position, 5), atol=1e-4
    )


@pytest.mark.parametrize("score,position", list(itertools.product(SCORES, ("none", *RELATIVE))))
@pytest.mark.parametrize("T", [9, 30], ids=["explicit-on-cpu", "fused"])
def test_attend_equals_softmax_of_logits(score, position, T):
    """Both bilinear paths (explicit for tiny problems on CPU, SDPA above
    CPU_EXPLICIT_MAX_LOGITS) and the chunked additive one compute exactly
    softmax(logits + bias) @ v."""
    assert 9 * 9 <= CPU_EXPLICIT_MAX_LOGITS < 30 * 30
    torch.manual_seed(0)
    model = transformer("decoder", score, position)
    layer = model.blocks[0].self_attn
    q, k, v = (torch.randn(2, 2, T, 8) for _ in range(3))
    pos = torch.arange(T).expand(2, T)
    ctx = model.encoding.context(pos, pos, causal=True)
    causal = torch.full((T, T), float("-inf")).triu(1)
    bias = causal if ctx.bias is None else causal + ctx.bias
    expected = softmax_attention(layer.score.logits(q, k, ctx), bias, v)
    torch.testing.assert_close(
        layer.score.attend(q, k, v, bias, ctx), expected, atol=1e-5, rtol=1e-5
    )


@given(scale=st.floats(1e-3, 1e3))
@settings(max_examples=10, deadline=None)
def test_cosine_logits_are_temperature_times_cosine_whatever_the_norms(scale):
    """τ·cos(q, k) with τ = 10 at initialisation, bounded by τ, blind to vector lengths."""
    torch.manual_seed(0)
    score = SCORES["cosine"](d_head=8, heads=2)
    q, k = torch.randn(3, 2, 5, 8), torch.randn(3, 2, 7, 8)
    expected = 10 * torch.nn.functional.cosine_similarity(q[:, :, :, None], k[:, :, None], dim=-1)
    logits = score.logits(scale * q, k / scale, NO_POSITIONS)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert logits.abs().max() <= 10 + 1e-4


def test_additive_chunks_bound_the_intermediate():
    """At long lengths one (B, H, chunk, Tk, d) block is no larger than the logits."""
    score = AdditiveScore(d_head=8, heads=2)
    q = torch.empty(64, 4, 512, 8)
    assert 1 <= score.chunk_size(q, q) * 512 * 8 <= 512 * 512


def test_heads_must_divide_d_model():
    with pytest.raises(ConfigError, match="heads: must divide d_model=16"):
        make_config(d_model=16, heads=3)


def test_learned_table_covers_every_evaluated_position():
    cfg = make_config(position="learned", train_max_len=5, **{"d_model": 16, "heads": 2})
    model = build_model(cfg, build_task("copy", cfg.resolved_eval_max_len))
    # decoder sequence at eval_max_len = 20: 20 + SEP + 20 + EOS
    assert model.transformer.encoding.table.num_embeddings == 42


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("score", ["scaled_dot", "additive"])
def test_cached_greedy_decoding_equals_recomputing_the_prefix(score, position):
    cfg = make_config(arch="decoder", score=score, position=position, **TINY)
    task = build_task("copy", cfg.resolved_eval_max_len)
    model = build_model(cfg, task).eval()
    gen = torch.Generator().manual_seed(0)
    batch = task.sample(torch.full((3,), 7), gen)
    with torch.no_grad():
        cached = model.predict(batch, gen)
        seq = torch.cat([batch.inputs, torch.full((3, 1), 1)], dim=1)  # input SEP
        pos = torch.arange(seq.shape[1] + 7).expand(3, -1)
        for _ in range(7):
            nxt = model.head(model.transformer(seq, pos))[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    assert torch.equal(cached, seq[:, -7:])
