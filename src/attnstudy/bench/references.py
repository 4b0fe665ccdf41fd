"""Reference models to time our decoder against, at the same width, depth, heads,
feed-forward size (4×), batch and length, each with a token embedding and an output head:

- `TorchReference`: `torch.nn.TransformerEncoderLayer` (pre-LN, GELU, batch first) under a
  causal mask, PyTorch's own fused multi-head attention (SDPA inside).
- `x_transformers_model`: lucidrains' x-transformers `Decoder`, configured to match one of
  our (score, position) variants, where it has one (`XT_SCORES`, `XT_POSITIONS`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnstudy.bench.shapes import Shape

# x-transformers options for our variants: (wrapper kwargs, decoder kwargs, note).
XT_POSITIONS: dict[str, tuple[dict, dict, str]] = {
    "none": ({"use_abs_pos_emb": False}, {}, ""),
    "sinusoidal": (
        {"scaled_sinu_pos_emb": True},
        {},
        "x-transformers' sinusoidal table has a learned scale and [sin | cos] halves",
    ),
    "learned": ({}, {}, "x-transformers scales the table by 1/sqrt(d)"),
    "rope": ({}, {"rotary_pos_emb": True}, "rotary_emb_dim = d_head (full rotation, as ours)"),
    "alibi": ({"use_abs_pos_emb": False}, {"alibi_pos_bias": True}, ""),
    "t5": ({}, {"rel_pos_bias": True}, "x-transformers cannot run T5 bias with flash"),
}
XT_SCORES: dict[str, tuple[dict, str]] = {
    "scaled_dot": ({}, ""),
    "cosine": ({"attn_qk_norm": True}, "x-transformers' qk-norm scale is fixed (10), ours learned"),
}


class TorchReference(nn.Module):
    """Embedding → N × TransformerEncoderLayer (causal) → LayerNorm → head: the counterpart
    of our `scaled_dot` + `none` decoder."""

    def __init__(self, shape: Shape, vocab: int):
        super().__init__()
        d = shape.d_model
        self.embedding = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(
            d, shape.heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, shape.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens: Tensor) -> Tensor:  # (B, T) → (B, T, vocab)
        T = tokens.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        x = self.layers(self.embedding(tokens), mask=mask, is_causal=True)
        return self.head(self.norm(x))


def x_transformers_model(
    shape: Shape, vocab: int, score: str, position: str, flash: bool
) -> nn.Module:
    """x-transformers' TransformerWrapper(Decoder) matching our (score, position)."""
    from x_transformers import Decoder, TransformerWrapper

    wrapper, decoder, _ = XT_POSITIONS[position]
    if position == "rope":
        decoder = decoder | {"rotary_emb_dim": shape.d_model // shape.heads}
    layers = Decoder(
        dim=shape.d_model,
        depth=shape.n_layers,
        heads=shape.heads,
        attn_dim_head=shape.d_model // shape.heads,
        ff_mult=4,
        attn_flash=flash,
        verbose=False,
        **decoder,
        **XT_SCORES[score][0],
    )
    return TransformerWrapper(
        num_tokens=vocab, max_seq_len=shape.seq_len, attn_layers=layers, **wrapper
    )


def xt_supports(score: str, position: str, flash: bool) -> bool:
    return score in XT_SCORES and position in XT_POSITIONS and not (flash and position == "t5")


def xt_note(score: str, position: str) -> str:
    return "; ".join(n for n in (XT_SCORES[score][1], XT_POSITIONS[position][2]) if n)


def language_model_loss(model: nn.Module, tokens: Tensor) -> Tensor:
    """Next-token cross entropy of a (B, T + 1) token batch."""
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())


def random_tokens(shape: Shape, vocab: int, gen: torch.Generator) -> Tensor:
    return torch.randint(0, vocab, (shape.batch_size, shape.seq_len + 1), generator=gen)
