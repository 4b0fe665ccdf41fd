"""Greedy decoding with the key-value cache (keys and values written in place, each key
rotated once, at its position) is bit-identical to the cache it replaced, which
concatenated every step's keys and values and rotated every key again at every step: the
same logits at every step, so the same predicted tokens and per-length accuracies, for
every positional encoding. And no attention call reads the device back (a GPU would wait
for it in every layer at every step)."""

import pytest
import torch
from builders import TINY_MODEL

from attnstudy import model as model_module
from attnstudy.archs import build_model
from attnstudy.evaluate import evaluate
from attnstudy.model import LayerCache
from attnstudy.position_context import NO_POSITIONS
from attnstudy.positions import POSITIONS
from attnstudy.registries import make_config
from attnstudy.scores import SCORES
from attnstudy.tasks import build_task

LENGTHS = {1: 3, 4: 3, 9: 3, 23: 2}  # 23: a prompt past CPU_EXPLICIT_MAX_LOGITS (fused path)


class Concatenated:
    """The replaced cache's growth: every step concatenates the new rows (B, H, T, d) to the
    old ones in a fresh tensor."""

    def __init__(self, capacity: int):
        self.rows = None

    def extend(self, x: torch.Tensor) -> torch.Tensor:
        self.rows = x if self.rows is None else torch.cat([self.rows, x], dim=2)
        return self.rows


def concatenating_layer_cache(capacity: int):
    """A layer cache as before: keys and values concatenated, no rotated keys kept (so every
    step rotates every key)."""
    cache = LayerCache(capacity)
    cache.keys, cache.values, cache.rotated = Concatenated(capacity), Concatenated(capacity), None
    return cache


def decoded(model, task) -> tuple[list, list[torch.Tensor]]:
    """evaluate()'s per-length results, and every logits tensor the head computed."""
    logits = []
    handle = model.head.register_forward_hook(lambda m, args, out: logits.append(out))
    try:
        results = evaluate(model, task, LENGTHS, seed=5, device=torch.device("cpu"))
    finally:
        handle.remove()
    return results, logits


def assert_as_before(monkeypatch, **settings):
    # trained on lengths 1 to 4 and evaluated up to 24: LENGTHS reach 23, mostly past the
    # trained lengths
    cfg = make_config(**(TINY_MODEL | dict(train_max_len=4, eval_max_len=24) | settings))
    task = build_task(cfg.task, cfg.eval_max_len)
    torch.manual_seed(0)
    model = build_model(cfg, task)
    for p in model.parameters():
        if not p.any():  # T5 biases, CoPE embeddings start at zero: make them informative
            p.data.normal_()
    results, logits = decoded(model, task)
    with monkeypatch.context() as m:
        m.setattr(model_module, "LayerCache", concatenating_layer_cache)
        before, logits_before = decoded(model, task)
    assert results == before  # per-length accuracies, by position too
    assert len(logits) == len(logits_before)
    assert all(map(torch.equal, logits, logits_before))  # so every predicted token


@pytest.mark.parametrize("arch", ["decoder", "encoder-decoder"])
@pytest.mark.parametrize("position", POSITIONS)
def test_cached_decoding_is_bit_identical_to_the_concatenating_cache(monkeypatch, arch, position):
    assert_as_before(monkeypatch, arch=arch, position=position)


@pytest.mark.parametrize("score", SCORES)
def test_keys_rotated_once_are_bit_identical_for_every_score(monkeypatch, score):
    """Each score transforms the keys before the rotation in its own way (cosine normalises
    them)."""
    assert_as_before(monkeypatch, score=score, position="rope", randomized=True)


@pytest.mark.parametrize("score", SCORES)
def test_no_score_reads_the_device_back(score):
    """On the meta device nothing can be read back (`any`, `item` raise): attention with a
    mask runs there, so on a GPU it never waits for the device."""
    layer = SCORES[score](d_head=8, heads=2).to("meta")
    q, k = torch.empty(3, 2, 1, 8, device="meta"), torch.empty(3, 2, 30, 8, device="meta")
    bias = torch.zeros(1, 1, 1, 30, device="meta")
    assert layer.attend(q, k, k, bias, NO_POSITIONS).shape == (3, 2, 1, 8)
