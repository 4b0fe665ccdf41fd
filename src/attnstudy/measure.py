"""What a run measures once its final evaluation is done: the attention of every layer and
head on one example of the longest training length, and the attention statistics of the
trained model and of the same model at initialisation (claims C3 and C5), on examples of the
run seed's test stream (`evaluate.evaluation_seed`), so seeds are independent draws here
too. `train.run` calls them (`train.measured`), so `attnstudy train --json` reports them
and tracking only logs them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from attnstudy import schema
from attnstudy.archs import Arch, initial_model
from attnstudy.config import Config
from attnstudy.evaluate import (
    alignment_mass,
    alignment_sharpness,
    attention_maps,
    attention_weights,
    head_diversity,
    uniform_mass,
)
from attnstudy.model import Block, MultiHeadAttention
from attnstudy.tasks import Task

Maps = dict[str, Tensor]  # "layer{i}_{self|cross}" → (H, Tq, Tk)
ALIGNMENT_SAMPLES = 8  # examples of the longest training length that attn_alignment averages


def attention_names(model: torch.nn.Module) -> list[str]:
    """Names of the attention layers in call order, which is their registration order (each
    runs once per teacher-forced pass). Blocks are numbered across the whole model (an
    encoder-decoder's decoder blocks follow its encoder blocks); attention outside a block
    (the RNN decoder's, over the encoder states) is layer 0's cross-attention."""
    names, block = [], -1
    for name, module in model.named_modules():
        if isinstance(module, Block):
            block += 1
        elif isinstance(module, MultiHeadAttention):
            kind = "self" if name.endswith("self_attn") else "cross"
            names.append(f"layer{max(block, 0)}_{kind}")
    return names


def long_example_attention(
    model: Arch, task: Task, n: int, seed: int, device
) -> tuple[Maps, Tensor]:
    """Attention of every layer and head on one example of length n, and its input."""
    weights, inputs = attention_maps(model, task, n, seed, device)
    return dict(zip(attention_names(model), weights, strict=True)), inputs


def attention_statistics(
    model: Arch, maps: Maps, cfg: Config, task: Task, seed: int, device
) -> dict[str, float]:
    """Over the attention layers of the trained model's `maps`: alignment sharpness and
    head diversity (averaged), the same head diversity at initialisation, and the
    alignment with the expected source token, trained and at initialisation (none for a
    model without attention). Examples come from the test stream of `seed`."""
    if not maps:
        return {}
    with torch.random.fork_rng(devices=[]):
        untrained = initial_model(cfg, task, device)
    n = cfg.train_max_len
    initial, _ = attention_maps(untrained, task, n, seed, device)
    trained = attention_alignment(model, task, n, seed, device)
    at_init = attention_alignment(untrained, task, n, seed, device)
    return {
        schema.ATTN_SHARPNESS: float(np.mean([alignment_sharpness(w) for w in maps.values()])),
        schema.HEAD_DIVERSITY: float(np.mean([head_diversity(w) for w in maps.values()])),
        schema.HEAD_DIVERSITY_INIT: float(np.mean([head_diversity(w) for w in initial])),
        schema.ATTN_ALIGNMENT: trained,
        schema.ATTN_ALIGNMENT_UNIFORM: uniform_alignment(model, task, cfg.train_max_len),
        schema.ATTN_ALIGNMENT_INIT: at_init,
    }


def attention_alignment(model: Arch, task: Task, n: int, seed: int, device) -> float:
    """Claim C3, alignment rather than peakedness: the attention mass that target queries
    put on the input token they copy (`Task.aligned_source`), averaged over those queries
    and ALIGNMENT_SAMPLES examples of length `n`, for the best layer and head. NaN for tasks
    without an aligned source. Applied to the trained model and, as C3's baseline, to the
    same model at initialisation (the same statistic, best head included)."""
    layout, source = model.attention_layout(task, n), task.aligned_source(n)
    if layout is None or source is None:
        return math.nan
    weights, _ = attention_weights(model, task, n, ALIGNMENT_SAMPLES, seed, device)
    keys = [layout.inputs[i] for i in source]
    return max(
        alignment_mass(w, layout.queries, keys).max().item()
        for name, w in zip(attention_names(model), weights, strict=True)
        if name.endswith(f"_{layout.kind}")
    )


def uniform_alignment(model: Arch, task: Task, n: int) -> float:
    """The mass uniform attention over the same keys would put on the expected one."""
    layout, source = model.attention_layout(task, n), task.aligned_source(n)
    return math.nan if layout is None or source is None else uniform_mass(layout.visible)
