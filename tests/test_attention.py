"""Properties of the attention maths: every combination trains, causality, padding,
shift invariance exactly where each (score, encoding) declares it, fused == explicit,
randomized position ids, start tokens, what an architecture without positions sees, Shaw's
clip and ALiBi's slopes."""

import dataclasses
import itertools

import pytest
import torch
from builders import TINY_MODEL
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.archs import ARCHS, build_model
from attnstudy.config import ConfigError
from attnstudy.model import Transformer
from attnstudy.position_context import NO_POSITIONS
from attnstudy.positions import POSITIONS, alibi_slopes
from attnstudy.registries import make_config
from attnstudy.scores import CPU_EXPLICIT_MAX_LOGITS, SCORES, AdditiveScore
from attnstudy.tasks import BLANK, BOS, SEP, TASKS, build_task, sample_lengths

NOT_ABSOLUTE = [name for name, p in POSITIONS.items() if p.family != "absolute"]


def valid_configs():
    for arch, score, position in itertools.product(ARCHS, SCORES, POSITIONS):
        try:
            yield make_config(arch=arch, score=score, position=position, **TINY_MODEL)
        except ConfigError:
            continue  # e.g. RNN architectures take no position encoding (tested elsewhere)


@pytest.mark.parametrize(
    "cfg", list(valid_configs()), ids=lambda c: f"{c.arch}-{c.score}-{c.position}"
)
def test_every_combination_has_finite_gradients(cfg):
    task = build_task(cfg.task, cfg.eval_max_len)
    model = build_model(cfg, task)
    gen = torch.Generator().manual_seed(0)
    loss = model.loss(task.sample(sample_lengths(1, 6, 4, gen), gen), gen)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads
    assert all(torch.isfinite(g).all() for g in grads)
    # greedy prediction at a length beyond training: the target, then EOS if it emits one
    batch = task.sample(torch.full((2,), 9), gen)
    assert model.predict(batch, gen).shape == (2, 9 + model.emits_eos)


def transformer(arch, score, position, randomized=False):
    cfg = make_config(
        arch=arch, score=score, position=position, randomized=randomized, **TINY_MODEL
    )
    return build_model(cfg, build_task("copy", cfg.eval_max_len)).transformer.eval()


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


def shifted_attention(score: str, position: str, shift: int) -> tuple[torch.Tensor, ...]:
    """First-layer logits (with positional bias) and attention output for one fixed input
    at positions 0..7 + shift, in an encoder (bidirectional) and a decoder (causal)."""
    out = []
    for arch in ("encoder", "decoder"):
        torch.manual_seed(0)
        # a learned table long enough for every shifted id; relative encodings keep the
        # ids they were trained on, so FIRE's threshold L stays within the shifts drawn
        absolute = POSITIONS[position].family == "absolute"
        model = transformer(arch, score, position, randomized=absolute)
        for p in model.encoding.parameters():
            if not p.any():  # T5 biases, CoPE embeddings start at zero: make them informative
                p.data.normal_()
        layer = model.blocks[0].self_attn
        x = torch.randn(1, 8, 16)
        pos = torch.arange(8)[None, :] + shift
        h = model.encoding.embed(x, pos)
        ctx = model.encoding.context(pos, pos, causal=model.causal)
        q, k = layer._split(layer.query(h)), layer._split(layer.key_value(h)[..., :16])
        bias = ctx.bias
        if model.causal:
            bias = torch.full((8, 8), float("-inf")).triu(1) + (0 if bias is None else bias)
        logits = layer.score.logits(q, k, ctx)
        out += [logits if bias is None else logits + bias, layer(h, h, bias, ctx)]
    return tuple(out)


def differs(a: tuple, b: tuple, tol: float) -> bool:
    return any(not torch.allclose(x, y, atol=tol, rtol=tol) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("score,position", list(itertools.product(SCORES, POSITIONS)))
@given(shift=st.integers(1, 40))
@settings(max_examples=5, deadline=None)
def test_shift_changes_logits_and_outputs_exactly_as_declared(score, position, shift):
    """Every (score, encoding) combination, against the facts its classes declare: if
    `shift_invariant`, moving every position by the same offset leaves the logits and the
    attention output unchanged; if not, some offset (37, or the drawn one) changes them."""
    base = shifted_attention(score, position, 0)
    if POSITIONS[position].shift_invariant(SCORES[score]):
        assert not differs(base, shifted_attention(score, position, shift), 1e-4)
    else:
        assert differs(base, shifted_attention(score, position, 37), 1e-3) or differs(
            base, shifted_attention(score, position, shift), 1e-3
        )


@pytest.mark.parametrize("score,position", list(itertools.product(SCORES, NOT_ABSOLUTE)))
@pytest.mark.parametrize("T", [9, 30], ids=["explicit-on-cpu", "fused"])
def test_attend_equals_weights_of_logits_times_values(score, position, T):
    """Every path (explicit for tiny problems on CPU, SDPA above CPU_EXPLICIT_MAX_LOGITS
    where the normaliser is softmax, the chunked additive one) computes exactly
    weights(logits, bias) @ v, positional terms included."""
    assert 9 * 9 <= CPU_EXPLICIT_MAX_LOGITS < 30 * 30
    torch.manual_seed(0)
    model = transformer("decoder", score, position)
    for p in model.encoding.parameters():
        if not p.any():  # T5 biases and CoPE embeddings start at zero
            p.data.normal_()
    layer = model.blocks[0].self_attn
    q, k, v = (torch.randn(2, 2, T, 8) for _ in range(3))
    pos = torch.arange(T).expand(2, T)
    ctx = model.encoding.context(pos, pos, causal=True)
    causal = torch.full((T, T), float("-inf")).triu(1)
    bias = causal if ctx.bias is None else causal + ctx.bias
    expected = layer.score.weights(layer.score.logits(q, k, ctx), bias) @ v
    torch.testing.assert_close(
        layer.score.attend(q, k, v, bias, ctx), expected, atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("score", SCORES)
def test_softmax_fact_says_whether_weights_are_softmax_of_logits_plus_bias(score):
    """`Score.softmax` licenses the fused softmax kernels: it holds exactly for the scores
    whose weights are softmax(logits + bias), checked on causal rows of several lengths."""
    torch.manual_seed(0)
    layer = SCORES[score](d_head=8, heads=2)
    logits = torch.randn(2, 2, 6, 6)
    bias = torch.full((6, 6), float("-inf")).triu(1) + torch.randn(6, 6)
    same = torch.allclose(layer.weights(logits, bias), torch.softmax(logits + bias, -1))
    assert same == SCORES[score].softmax


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
    model = build_model(cfg, build_task("copy", cfg.eval_max_len))
    # decoder sequence at eval_max_len = 20: BOS + 20 + SEP + 20 + EOS
    assert model.transformer.encoding.table.num_embeddings == 43


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("score", list(SCORES))
def test_cached_greedy_decoding_equals_recomputing_the_prefix(score, position):
    cfg = make_config(arch="decoder", score=score, position=position, **TINY_MODEL)
    task = build_task("copy", cfg.eval_max_len)
    model = build_model(cfg, task).eval()
    gen = torch.Generator().manual_seed(0)
    batch = task.sample(torch.full((3,), 7), gen)
    with torch.no_grad():
        cached = model.predict(batch, gen)
        seq = torch.cat([torch.full((3, 1), BOS), batch.inputs, torch.full((3, 1), SEP)], 1)
        pos = torch.arange(seq.shape[1] + 8).expand(3, -1)
        for _ in range(8):  # the target, then EOS
            nxt = model.head(model.transformer(seq, pos))[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    assert torch.equal(cached, seq[:, -8:])


def arch_configs(**settings):
    """(arch, Config) for every architecture that accepts these settings."""
    for arch in ARCHS:
        try:
            yield pytest.param(arch, make_config(arch=arch, **(TINY_MODEL | settings)), id=arch)
        except ConfigError:
            continue


def first_calls(model, call) -> dict[Transformer, tuple[torch.Tensor, torch.Tensor]]:
    """(tokens, position ids) each Transformer of the model is first called with in call(),
    in call order."""
    seen: dict = {}

    def hook(module, args):
        seen.setdefault(module, (args[0], args[1]))

    transformers = [m for m in model.modules() if isinstance(m, Transformer)]
    handles = [m.register_forward_pre_hook(hook) for m in transformers]
    try:
        with torch.no_grad():
            call()
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("arch,cfg", list(arch_configs(position="learned", randomized=True)))
def test_randomized_ids_of_an_example_do_not_depend_on_its_batch(arch, cfg):
    """Ruoss et al. 2023: an example of length 1 padded into a training batch of length 6
    gets ids distributed as in evaluation, where the batch holds its length only (today's
    defect: the first ids of a subset drawn at the padded width)."""
    task = build_task("copy", cfg.eval_max_len)
    model = build_model(cfg, task).eval()
    n, gen = 2000, torch.Generator().manual_seed(0)
    mixed = task.sample(torch.tensor([1] * n + [6] * n), gen)
    alone = task.sample(torch.ones(n, dtype=torch.long), gen)
    training = first_calls(model, lambda: model.loss(mixed, torch.Generator().manual_seed(1)))
    evaluation = first_calls(model, lambda: model.predict(alone, torch.Generator().manual_seed(2)))
    for module, (_, ids) in evaluation.items():
        width = ids.shape[1]  # every id an example of length 1 is given
        trained = training[module][1][:n, :width].float()
        # standard error of a mean here is below 1; the defect moves them by 20 or more
        torch.testing.assert_close(trained.mean(0), ids.float().mean(0), atol=4.0, rtol=0)


@pytest.mark.parametrize("arch,cfg", list(arch_configs()))
def test_every_transformer_sequence_starts_with_a_fixed_token(arch, cfg):
    """Kazemnejad et al. 2023: a causal model without positions can only count from a fixed
    first token. Every sequence a Transformer reads, in training and in greedy decoding,
    starts with one token (BOS, or SEP for an encoder-decoder's decoder)."""
    task = build_task("copy", cfg.eval_max_len)
    model = build_model(cfg, task).eval()
    gen = torch.Generator().manual_seed(0)
    batch = task.sample(sample_lengths(1, 6, 16, gen), gen)
    calls = [
        first_calls(model, lambda: model.loss(batch, gen)),
        first_calls(model, lambda: model.predict(task.sample(torch.full((8,), 3), gen), gen)),
    ]
    for module in calls[0]:
        first = torch.cat([call[module][0][:, 0] for call in calls])
        assert (first == first[0]).all() and first[0] in (BOS, SEP)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_an_architecture_declares_whether_it_sees_order_without_positions(arch):
    """`Arch.unsolvable_without_positions`: without positions a bidirectional encoder (and an
    encoder-decoder's encoder) sees its source as an unordered bag, so its loss is the same
    when the source is reversed; a causal decoder and an RNN order tokens by themselves."""
    cfg = make_config(arch=arch, position="none", **TINY_MODEL)
    task = build_task("copy", cfg.eval_max_len)
    model = build_model(cfg, task).eval()
    gen = torch.Generator().manual_seed(0)
    batch = task.sample(torch.full((8,), 5), gen)
    reversed_source = dataclasses.replace(batch, inputs=batch.inputs.flip(1))
    with torch.no_grad():
        blind = torch.allclose(model.loss(batch, gen), model.loss(reversed_source, gen))
    assert blind == (ARCHS[arch].unsolvable_without_positions(TASKS["copy"]) is not None)


def test_an_encoder_without_positions_gives_every_answer_blank_one_output():
    """Why it cannot solve even sort, whose answer depends on the bag of tokens only."""
    cfg = make_config(arch="encoder", position="none", **TINY_MODEL)
    task = build_task("sort", cfg.eval_max_len)
    gen = torch.Generator().manual_seed(0)
    predicted = build_model(cfg, task).eval().predict(task.sample(torch.full((8,), 5), gen), gen)
    assert (predicted == predicted[:, :1]).all()
    assert ARCHS["encoder"].unsolvable_without_positions(TASKS["sort"]) is not None
    assert ARCHS["encoder-decoder"].unsolvable_without_positions(TASKS["sort"]) is None


@pytest.mark.parametrize("arch,cfg", list(arch_configs()))
def test_attention_layout_matches_what_attention_sees(arch, cfg):
    """`attention_layout`: input token i is key inputs[i]; the query at queries[j] reads
    target j (a blank) or predicts it (the next token); visible counts the keys a query
    may attend to; the recorded maps of that kind have layout.keys keys."""
    from attnstudy.measure import attention_names
    from attnstudy.model import MultiHeadAttention, record_attention

    task = build_task("reverse", cfg.eval_max_len)
    model = build_model(cfg, task).eval()
    layout = model.attention_layout(task, 5)
    if layout is None:
        assert not any(isinstance(m, MultiHeadAttention) for m in model.modules())
        return
    gen = torch.Generator().manual_seed(0)
    batch = task.sample(torch.full((3,), 5), gen)
    with torch.no_grad(), record_attention(model) as maps:
        model.loss(batch, gen)
    named = zip(attention_names(model), maps, strict=True)
    kinds = [w for name, w in named if name.endswith(layout.kind)]
    assert kinds and all(w.shape[-1] == layout.keys for w in kinds)
    assert all(w.shape[-2] > max(layout.queries) for w in kinds)
    calls = list(first_calls(model, lambda: model.loss(batch, gen)).items())
    if not calls:  # a recurrent encoder: its states are the keys, one per input token
        assert layout.inputs == list(range(5)) and layout.visible == [5] * 5
        return
    (decoder, (queries, _)), keys = calls[-1], calls[0 if layout.kind == "cross" else -1][1][0]
    assert torch.equal(keys[:, layout.inputs], batch.inputs)
    q = torch.tensor(layout.queries)
    if model.emits_eos:
        assert torch.equal(queries[:, q + 1], batch.targets)
    else:
        assert (queries[:, q] == BLANK).all()
    causal = layout.kind == "self" and decoder.causal
    assert layout.visible == [i + 1 if causal else layout.keys for i in layout.queries]


TRANSFORMER_ARCHS = [name for name, arch in ARCHS.items() if arch.uses_positions]


def step_at_longest(arch: str, position: str, task_name: str, longest: int, prepare=None):
    """A model after one backward pass of its loss on a batch of the longest training length
    (`prepare(model)` first, if given)."""
    cfg = make_config(arch=arch, position=position, **(TINY_MODEL | dict(train_max_len=longest)))
    task = build_task(task_name, cfg.eval_max_len)
    model = build_model(cfg, task)
    if prepare is not None:
        prepare(model)
    gen = torch.Generator().manual_seed(0)
    model.loss(task.sample(torch.full((3,), longest), gen), gen).backward()
    return model


def rows_with_gradient(table: torch.nn.Parameter) -> list[int]:
    return [] if table.grad is None else table.grad.abs().sum(-1).nonzero().flatten().tolist()


def transformers(model) -> list[Transformer]:
    return [m for m in model.modules() if isinstance(m, Transformer)]


@pytest.mark.parametrize("arch", TRANSFORMER_ARCHS)
@given(task_name=st.sampled_from(["copy", "duplicate", "addition"]), longest=st.integers(1, 7))
@settings(max_examples=6, deadline=None)
def test_every_shaw_row_up_to_the_clip_trains_at_the_longest_training_length(
    arch, task_name, longest
):
    """Shaw's default clip k is the farthest distance between positions a training sequence
    feeds each Transformer (the decoder's final EOS is only a label): at the longest training
    length every row its attention reaches gets a gradient, distances −k..0 causal and −k..k
    bidirectional, so the rows ±k that every longer distance falls on are trained ones."""
    model = step_at_longest(arch, "relative", task_name, longest)
    for transformer in transformers(model):
        enc = transformer.encoding
        reached = enc.clip + 1 if transformer.causal else 2 * enc.clip + 1
        assert rows_with_gradient(enc.table) == list(range(reached))


def open_every_gate(model) -> None:
    """q = k = one constant vector in every self-attention, q·k/√d_head = 9·√8 ≈ 25, so every
    CoPE gate σ(q·k/√d_head) is 1: key j counts exactly i − j + 1 for query i."""
    with torch.no_grad():
        for transformer in transformers(model):
            d = transformer.embedding.embedding_dim
            for block in transformer.blocks:
                layer = block.self_attn
                layer.query.weight.zero_()
                layer.key_value.weight[:d].zero_()
                layer.query.bias.fill_(3.0)
                layer.key_value.bias[:d].fill_(3.0)


@pytest.mark.parametrize("arch", TRANSFORMER_ARCHS)
@given(task_name=st.sampled_from(["copy", "duplicate", "addition"]), longest=st.integers(1, 7))
@settings(max_examples=6, deadline=None)
def test_every_cope_count_up_to_npos_trains_at_the_longest_training_length(
    arch, task_name, longest
):
    """CoPE's npos is the most keys a training sequence feeds one query: with every gate open
    at the longest training length, query i counts key j as i − j + 1 and every count 1..npos
    gets a gradient, npos (the embedding every longer count is clamped to) from the farthest
    key; keys after a bidirectional query count 2..npos in the second table."""
    model = step_at_longest(arch, "cope", task_name, longest, open_every_gate)
    for transformer in transformers(model):
        enc = transformer.encoding
        assert rows_with_gradient(enc.before) == list(range(1, enc.npos + 1))
        after = [] if transformer.causal else list(range(2, enc.npos + 1))
        assert rows_with_gradient(enc.after) == after


def test_shaw_clip_is_configurable_and_covers_the_random_range():
    task = build_task("copy", 64)
    cfg = make_config(position="relative", relative_clip=3, **TINY_MODEL)
    assert build_model(cfg, task).transformer.encoding.clip == 3
    cfg = make_config(position="relative", randomized=True, max_random_position=300, **TINY_MODEL)
    assert build_model(cfg, task).transformer.encoding.clip == 299
    with pytest.raises(ConfigError, match="relative_clip: must be >= 0, got -1"):
        make_config(position="relative", relative_clip=-1)


@pytest.mark.parametrize(
    "heads,expected",
    [
        (4, [2**-2, 2**-4, 2**-6, 2**-8]),
        (8, [2.0**-k for k in range(1, 9)]),
        # closest lower power of two (4), then slopes 1, 3 of 8's: 2^-1, 2^-3
        (6, [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]),
        # 8's slopes, then slopes 1, 3, 5, 7 of 16's: 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
        (12, [2.0**-k for k in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]),
    ],
)
def test_alibi_slopes_follow_press_et_al(heads, expected):
    cfg = make_config(position="alibi", d_model=48, heads=heads)
    model = build_model(cfg, build_task("copy", cfg.eval_max_len))
    torch.testing.assert_close(model.transformer.encoding.slopes.flatten(), torch.tensor(expected))
    assert alibi_slopes(heads) == pytest.approx(expected)
