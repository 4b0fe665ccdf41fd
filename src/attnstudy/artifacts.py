"""What a trial leaves behind as files: the per-length CSV, the accuracy-vs-length figure,
the attention maps of one long example (every layer and head in one PNG, raw weights in
NPZ), the resolved config and the model's state_dict. (Its per-position accuracy is a
table MLflow logs itself: tracking.POSITION_TABLE.)

Plot functions take data and return a Figure (no I/O, no pyplot state); `write_artifacts`
saves them.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from attnstudy.archs import Arch
from attnstudy.evaluate import (
    TEST_SEED,
    LengthResult,
    alignment_mass,
    alignment_sharpness,
    attention_maps,
    attention_weights,
    head_diversity,
    uniform_mass,
)
from attnstudy.model import Block, MultiHeadAttention
from attnstudy.tasks import Task
from attnstudy.train import TrainResult, initial_model

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


def long_example_attention(result: TrainResult) -> tuple[Maps, Tensor]:
    """Attention of every layer and head on one example of the longest training length."""
    cfg = result.config
    weights, inputs = attention_maps(
        result.model, result.task, cfg.train_max_len, TEST_SEED, result.device
    )
    return dict(zip(attention_names(result.model), weights, strict=True)), inputs


def attention_summary(result: TrainResult, maps: Maps) -> dict[str, float]:
    """Over the attention layers of the trained model's `maps`: alignment sharpness and
    head diversity (averaged), the same head diversity at initialisation, and the
    alignment with the expected source token, trained and at initialisation (none for a
    model without attention)."""
    if not maps:
        return {}
    cfg, task, device = result.config, result.task, result.device
    with torch.random.fork_rng(devices=[]):
        untrained = initial_model(cfg, task, device)
    initial, _ = attention_maps(untrained, task, cfg.train_max_len, TEST_SEED, device)
    trained = attention_alignment(result.model, task, cfg.train_max_len, device)
    at_init = attention_alignment(untrained, task, cfg.train_max_len, device)
    return {
        "attn_sharpness": float(np.mean([alignment_sharpness(w) for w in maps.values()])),
        "head_diversity": float(np.mean([head_diversity(w) for w in maps.values()])),
        "head_diversity_init": float(np.mean([head_diversity(w) for w in initial])),
        "attn_alignment": trained,
        "attn_alignment_uniform": uniform_alignment(result.model, task, cfg.train_max_len),
        "attn_alignment_init": at_init,
    }


def attention_alignment(model: Arch, task: Task, n: int, device: torch.device) -> float:
    """Claim C3, alignment rather than peakedness: the attention mass that target queries
    put on the input token they copy (`Task.aligned_source`), averaged over those queries
    and ALIGNMENT_SAMPLES examples of length `n`, for the best layer and head. NaN for tasks
    without an aligned source. Applied to the trained model and, as C3's baseline, to the
    same model at initialisation (the same statistic, best head included)."""
    layout, source = model.attention_layout(task, n), task.aligned_source(n)
    if layout is None or source is None:
        return math.nan
    weights, _ = attention_weights(model, task, n, ALIGNMENT_SAMPLES, TEST_SEED, device)
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


def plot_accuracy_vs_length(per_length: list[LengthResult], train_max_len: int) -> Figure:
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    lengths = [r.length for r in per_length]
    ax.plot(lengths, [r.seq_acc for r in per_length], marker=".", label="exact match")
    ax.plot(lengths, [r.token_acc for r in per_length], marker=".", label="token accuracy")
    ax.axvline(train_max_len + 0.5, color="grey", linestyle="--", linewidth=1)
    ax.text(train_max_len + 0.7, 0.02, "beyond training", color="grey", fontsize=8)
    ax.set(xlabel="length", ylabel="accuracy", ylim=(-0.02, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_attention(maps: Maps, title: str) -> Figure:
    """Every attention layer (a row) and head (a column) in one figure: one figure instead of
    one per layer, and no automatic layout, keeps drawing it a small share of a trial."""
    rows, heads = len(maps), max(w.shape[0] for w in maps.values())
    fig = Figure(figsize=(1.9 * heads, 1.9 * rows + 0.5))
    axes = fig.subplots(rows, heads, squeeze=False)
    for row, (name, weights) in zip(axes, maps.items(), strict=True):
        for h, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if h < weights.shape[0]:  # (Tq, Tk): query down, key across
                ax.imshow(weights[h].numpy(), vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(f"{name} head {h}", fontsize=7)
        row[0].set_ylabel("query", fontsize=7)
    fig.suptitle(f"{title} (keys across)", fontsize=9)
    fig.subplots_adjust(
        left=0.05,
        right=0.98,
        bottom=0.02,
        top=1 - 0.45 / fig.get_figheight(),
        wspace=0.08,
        hspace=0.25,
    )
    return fig


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_artifacts(result: TrainResult, maps: Maps, inputs: Tensor, directory: Path) -> None:
    """Every per-trial artifact of the MLflow contract, under `directory`."""
    cfg = result.config
    _write_csv(
        directory / "per_length.csv",
        ["length", "n", "token_acc", "seq_acc"],
        [[r.length, r.n, r.token_acc, r.seq_acc] for r in result.per_length],
    )
    _save(
        plot_accuracy_vs_length(result.per_length, cfg.train_max_len),
        directory / "accuracy_vs_length.png",
    )
    if maps:
        title = f"{cfg.arch}, {cfg.score}, {cfg.position}, length {cfg.train_max_len}"
        _save(plot_attention(maps, title), directory / "attention.png")
    arrays = {name: w.numpy() for name, w in maps.items()}
    np.savez_compressed(directory / "attention.npz", inputs=inputs.numpy(), **arrays)
    (directory / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    torch.save(result.model.state_dict(), directory / "model.pt")
