"""What a trial leaves behind as files: the per-length CSV, the accuracy-vs-length figure,
the attention maps of one long example (every layer and head in one PNG, raw weights in
NPZ), the resolved config and the model's state_dict. (Its per-position accuracy is a
table MLflow logs itself: schema.POSITION_TABLE.)

Plot functions take data and return a Figure (no I/O, no pyplot state); `write_artifacts`
saves them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from attnstudy.evaluate import LengthResult
from attnstudy.measure import Maps
from attnstudy.schema import MODEL_ARTIFACT
from attnstudy.train import TrainResult


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


def write_artifacts(result: TrainResult, directory: Path) -> None:
    """Every per-trial artifact of the MLflow contract, under `directory`."""
    cfg, maps, inputs = result.config, result.attention, result.attention_inputs
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
    torch.save(result.model.state_dict(), directory / MODEL_ARTIFACT)
