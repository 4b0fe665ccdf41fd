"""`batching: packed`: examples laid end to end in rows, attention kept within each one.

The claim that makes packing safe to use in the study is that it computes the padded
batch's loss, only without the padding: the same value and the same gradient for every
score, encoding and packing architecture, randomized positions included. How the rows are
laid out (first fit, each example with its own positions) is test_sequences.py's."""

import pytest
import torch

from attnstudy.archs import ARCHS, build_model
from attnstudy.config import ConfigError
from attnstudy.positions import POSITIONS
from attnstudy.registries import make_config
from attnstudy.scores import SCORES
from attnstudy.tasks import LENGTH_SAMPLERS, build_task
from attnstudy.train import run

PACKING = [name for name, arch in ARCHS.items() if arch.packs]
NOT_PACKING = [name for name, arch in ARCHS.items() if not arch.packs]
SMALL = dict(task="copy", d_model=16, heads=2, n_layers=2, train_max_len=9, device="cpu")


def covering() -> list[tuple[str, str, str]]:
    """(arch, position, score) triples with every pair of the three in at least one: every
    (position, score) once, in the architecture their indices' sum picks, so each encoding and
    each score also meets every packing architecture. A fault is in one variant or in how two
    meet; the full product would only repeat pairs."""
    return [
        (PACKING[(i + j) % len(PACKING)], position, score)
        for i, position in enumerate(POSITIONS)
        for j, score in enumerate(SCORES)
    ]


def cases():
    for arch, position, score in covering():
        yield pytest.param(arch, position, score, False, id=f"{arch}-{position}-{score}")
    for arch in PACKING:
        for position, encoding in POSITIONS.items():
            if encoding.takes_position_ids:
                yield pytest.param(arch, position, "scaled_dot", True, id=f"{arch}-{position}-rnd")


def test_the_packing_cases_cover_every_pair_of_arch_encoding_and_score():
    found = covering()
    for a, b in ((0, 1), (0, 2), (1, 2)):
        pairs = {(t[a], t[b]) for t in found}
        sides = (PACKING, list(POSITIONS), list(SCORES))
        assert pairs == {(x, y) for x in sides[a] for y in sides[b]}


def loss_and_gradient(cfg, batch):
    torch.manual_seed(0)
    model = build_model(cfg, build_task(cfg.task, cfg.eval_max_len))
    loss = model.loss(batch, torch.Generator().manual_seed(1))
    loss.backward()
    grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
    return loss.item(), torch.cat(grads)


@pytest.mark.parametrize("arch, position, score, randomized", list(cases()))
def test_packed_loss_and_gradient_are_the_padded_batchs(arch, position, score, randomized):
    variant = dict(SMALL, arch=arch, position=position, score=score, randomized=randomized)
    padded, packed = (make_config(**variant, batching=b) for b in ("padded", "packed"))
    gen = torch.Generator().manual_seed(7)
    task = build_task("copy", padded.eval_max_len)
    batch = task.sample(LENGTH_SAMPLERS["padded"](1, 9, 12, gen), gen)
    loss_padded, grad_padded = loss_and_gradient(padded, batch)
    loss_packed, grad_packed = loss_and_gradient(packed, batch)
    assert loss_packed == pytest.approx(loss_padded, rel=1e-5)
    torch.testing.assert_close(grad_packed, grad_padded, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", NOT_PACKING)
def test_an_architecture_that_cannot_pack_refuses_it_and_names_those_that_can(arch):
    with pytest.raises(ConfigError) as err:
        make_config(**SMALL, arch=arch, batching="packed")
    message = str(err.value)
    assert message.startswith("batching:") and arch in message
    assert all(name in message for name in PACKING)


def test_a_packed_run_follows_the_padded_runs_training_curve():
    common = dict(SMALL, arch="decoder", position="rope", steps=60, val_every=30, lr=5e-3)
    padded, packed = (run(make_config(**common, batching=b)) for b in ("padded", "packed"))
    curves = [[r["train_loss"] for r in result.history] for result in (padded, packed)]
    assert curves[0][-1] < curves[0][0] - 0.3  # it trained
    assert curves[1] == pytest.approx(curves[0], rel=1e-4)
