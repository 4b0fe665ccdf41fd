"""The recurrent encoder-decoders: gradients, attention that ignores padding, a plain
decoder that sees only the final state, incremental == one-pass decoding, config checks,
and a tiny model that learns copy."""

import pytest
import torch
from builders import LEARNS_COPY, TINY_MODEL

from attnstudy.archs import ARCHS, build_model
from attnstudy.cli import main
from attnstudy.config import ConfigError
from attnstudy.model import MultiHeadAttention, record_attention
from attnstudy.registries import make_config
from attnstudy.schema import ID_SEQ_ACC
from attnstudy.scores import SCORES
from attnstudy.tasks import PAD, Batch, build_task, sample_lengths
from attnstudy.train import run

RNNS = tuple(name for name, cls in ARCHS.items() if not cls.uses_positions)


def rnn(arch: str, score: str = "scaled_dot"):
    cfg = make_config(arch=arch, score=score, position="none", **TINY_MODEL)  # no encoding
    task = build_task("copy", cfg.eval_max_len)
    return build_model(cfg, task).eval(), task


def mixed_batch(task, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return task.sample(torch.tensor([2, 6, 4, 1]), gen)


def with_padding(batch: Batch, extra: int) -> Batch:
    """The same examples with `extra` more PAD columns after the inputs."""
    pad = torch.full((len(batch.inputs), extra), PAD)
    inputs = torch.cat([batch.inputs, pad], dim=1)
    return Batch(inputs, batch.input_lens, batch.targets, batch.target_lens)


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("arch", RNNS)
def test_every_parameter_gets_a_finite_gradient(arch, score):
    model, task = rnn(arch, score)
    gen = torch.Generator().manual_seed(0)
    loss = model.train().loss(task.sample(sample_lengths(1, 6, 8, gen), gen), gen)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("score", SCORES)
def test_attention_weights_skip_padding_and_softmax_rows_sum_to_one(score):
    """Padding keys weigh 0 under every normaliser; rows sum to 1 where it is softmax (a
    sigmoid row need not)."""
    model, task = rnn("rnn-attention", score)
    batch = mixed_batch(task)
    with torch.no_grad(), record_attention(model) as maps:
        model.loss(batch, torch.Generator())
    (weights,) = maps  # one call over every decoder step: (B, H, Tout + 1, S)
    assert weights.shape == (4, 2, 7, 6)
    if SCORES[score].softmax:
        torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2, 7))
    pad = torch.arange(6)[None, :] >= batch.input_lens[:, None]  # (B, S)
    assert (weights.permute(0, 2, 3, 1)[pad[:, None].expand(-1, 7, -1)] == 0).all()


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("arch", RNNS)
def test_outputs_ignore_padding_length(arch, score):
    model, task = rnn(arch, score)
    batch = mixed_batch(task)
    with torch.no_grad():
        a = model.head(model.readouts(batch))
        b = model.head(model.readouts(with_padding(batch, 5)))
    torch.testing.assert_close(a, b)


def test_encoder_final_state_is_each_example_alone():
    model, task = rnn("rnn")
    batch = mixed_batch(task)
    with torch.no_grad():
        _, final = model.encoder(batch.inputs, batch.input_lens)  # (n_layers, B, d)
        for b, n in enumerate(batch.input_lens.tolist()):
            _, alone = model.encoder(batch.inputs[b : b + 1, :n], batch.input_lens[b : b + 1])
            torch.testing.assert_close(final[:, b], alone[:, 0])


def test_plain_rnn_sees_only_the_final_state():
    model, task = rnn("rnn")
    batch = mixed_batch(task)
    with torch.no_grad():
        memory, memory_bias, final = model.encode(batch)
        tokens = batch.targets
        a, _ = model.decode(tokens, final, memory, memory_bias)
        b, _ = model.decode(tokens, final, torch.randn_like(memory), memory_bias)
        c, _ = model.decode(tokens, torch.randn_like(final), memory, memory_bias)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("arch", RNNS)
def test_greedy_decoding_matches_teacher_forcing_on_its_own_output(arch):
    model, task = rnn(arch, "additive")
    batch = task.sample(torch.full((3,), 9), torch.Generator().manual_seed(1))
    with torch.no_grad():
        predicted = model.predict(batch, torch.Generator())  # the target, then EOS
        own = Batch(batch.inputs, batch.input_lens, predicted[:, :-1], batch.target_lens)
        logits = model.head(model.readouts(own))  # (B, Tout + 1, vocab)
    assert torch.equal(logits.argmax(-1), predicted)


@pytest.mark.parametrize("arch", RNNS)
@pytest.mark.parametrize("setting", [dict(position="sinusoidal"), dict(position="rope")])
def test_position_other_than_none_is_rejected(arch, setting):
    with pytest.raises(ConfigError, match="position: .*recurrence; allowed: none"):
        make_config(arch=arch, **setting)


@pytest.mark.parametrize("arch", RNNS)
def test_cli_rejects_a_position_encoding_with_exit_2(arch, capsys):
    assert main(["train", "--quiet", "--arch", arch, "--position", "learned"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("attnstudy: error: position:") and "allowed: none" in err


def test_randomized_positions_are_rejected():
    with pytest.raises(ConfigError, match="randomized: must be false"):
        make_config(arch="rnn", position="none", randomized=True)


def test_tiny_rnn_attention_learns_copy_in_distribution():
    variant = dict(arch="rnn-attention", position="none", heads=1, n_layers=1, train_max_len=6)
    more = dict(eval_max_len=6, warmup_steps=20, val_samples=96)
    cfg = make_config(**(LEARNS_COPY | variant | more))
    assert run(cfg).summary[ID_SEQ_ACC] >= 0.95


@pytest.mark.parametrize("arch", ARCHS)
def test_an_architecture_declares_what_it_uses(arch):
    """The facts the analysis reads: `uses_attention` iff the model has attention layers,
    `uses_positions` iff it accepts a positional encoding."""
    cls = ARCHS[arch]
    model = build_model(
        make_config(arch=arch, position="none", **TINY_MODEL), build_task("copy", 12)
    )
    assert cls.uses_attention == any(isinstance(m, MultiHeadAttention) for m in model.modules())
    try:
        make_config(arch=arch, **(TINY_MODEL | dict(position="learned")))
        accepted = True
    except ConfigError:
        accepted = False
    assert cls.uses_positions == accepted
