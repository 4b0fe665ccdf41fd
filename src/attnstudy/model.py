"""The Transformer: multi-head attention with a pluggable score function, blocks with
pre- or post-LayerNorm, and a stack that calls the positional encoding's hooks.

The model never asks which score or encoding it has: `build_transformer` (in archs.py)
hands it a score class and an encoding object, and it calls their hooks.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn

from attnstudy.config import Config
from attnstudy.position_context import NO_POSITIONS, PositionalContext, SequenceBuffer
from attnstudy.positions import PositionalEncoding
from attnstudy.scores import Score, add_bias


def mask_bias(
    q_start: int,
    q_len: int,
    k_len: int,
    causal: bool,
    key_pad: Tensor | None,
    device: torch.device,
) -> Tensor | None:
    """Additive mask (B or 1, 1, Tq, Tk): −inf where query i may not see key j.

    Queries are sequence indices q_start..q_start+q_len-1 (so incremental decoding
    masks correctly); key_pad (B, Tk) is True at padding keys."""
    bias = None
    if causal:
        i = torch.arange(q_start, q_start + q_len, device=device)[:, None]
        j = torch.arange(k_len, device=device)[None, :]
        bias = torch.zeros(q_len, k_len, device=device).masked_fill(j > i, float("-inf"))
        bias = bias[None, None]
    if key_pad is not None:
        pad = torch.zeros(key_pad.shape, device=device).masked_fill(key_pad, float("-inf"))
        bias = add_bias(bias, pad[:, None, None, :])
    return bias


def segment_bias(segments: Tensor | None) -> Tensor | None:
    """Additive mask (R, 1, T, T): −inf where query i and key j belong to different
    examples of a packed row (`segments` (R, T), the example of each token)."""
    if segments is None:
        return None
    apart = segments[:, None, :, None] != segments[:, None, None, :]
    return torch.zeros(apart.shape, device=segments.device).masked_fill(apart, float("-inf"))


class LayerCache:
    """One layer's state while decoding: the keys and values of the tokens so far, the keys
    as the positional encoding rotated them, and (cross-attention) the encoder memory's keys
    and values, projected once."""

    def __init__(self, capacity: int):
        self.keys, self.values, self.rotated = (SequenceBuffer(capacity) for _ in range(3))
        self.memory_kv: tuple[Tensor, Tensor] | None = None


class KVCache:
    """Per layer, the state of greedy decoding of up to `capacity` tokens, written in place
    into buffers allocated once."""

    def __init__(self, n_layers: int, capacity: int):
        self.layers = [LayerCache(capacity) for _ in range(n_layers)]
        self.length = 0


class MultiHeadAttention(nn.Module):
    """Vaswani et al. 2017 multi-head attention; the score function decides how a query
    meets a key."""

    def __init__(self, cfg: Config, score: type[Score]):
        super().__init__()
        self.heads, self.d_head = cfg.heads, cfg.d_model // cfg.heads
        self.query = nn.Linear(cfg.d_model, cfg.d_model)
        self.key_value = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.score = score(self.d_head, cfg.heads)
        self.recorded: list[Tensor] | None = None  # set by `record_attention`

    def _split(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.d_head).transpose(1, 2)  # (B, H, T, d)

    def _project_kv(self, source: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.key_value(source).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def _keys_values(self, source: Tensor, cache: LayerCache | None, self_attention: bool):
        """Keys and values; while decoding, self-attention appends the new tokens' keys and
        values to the cache and cross-attention projects the encoder memory once."""
        if cache is None:
            return self._project_kv(source)
        if not self_attention:
            if cache.memory_kv is None:
                cache.memory_kv = self._project_kv(source)
            return cache.memory_kv
        k, v = self._project_kv(source)
        return cache.keys.extend(k), cache.values.extend(v)

    def forward(
        self,
        x: Tensor,
        source: Tensor,
        bias: Tensor | None,
        ctx: PositionalContext,
        cache: LayerCache | None = None,
        self_attention: bool = True,
    ) -> Tensor:
        q = self._split(self.query(x))
        k, v = self._keys_values(source, cache, self_attention)
        if cache is not None:
            ctx = ctx.decoding(cache.rotated)
        if self.recorded is not None:
            self.recorded.append(self.score.weights(self.score.logits(q, k, ctx), bias))
        y = self.score.attend(q, k, v, bias, ctx)  # (B, H, Tq, d)
        return self.out(y.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    def __init__(self, cfg: Config):
        super().__init__(
            nn.Linear(cfg.d_model, cfg.ff_mult * cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.ff_mult * cfg.d_model, cfg.d_model),
        )


class Residual(nn.Module):
    """x + f(norm(x)) (pre-LN) or norm(x + f(x)) (post-LN, Vaswani et al.)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.pre = cfg.norm == "pre"
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, f) -> Tensor:
        if self.pre:
            return x + self.dropout(f(self.norm(x)))
        return self.norm(x + self.dropout(f(x)))


class Block(nn.Module):
    """Self-attention, optional cross-attention over an encoder's memory, feed-forward."""

    def __init__(self, cfg: Config, score: type[Score], cross: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg, score)
        self.cross_attn = MultiHeadAttention(cfg, score) if cross else None
        self.ff = FeedForward(cfg)
        self.residuals = nn.ModuleList(Residual(cfg) for _ in range(3 if cross else 2))

    def forward(self, x, bias, ctx, memory=None, memory_bias=None, cache=None):
        x = self.residuals[0](x, lambda h: self.self_attn(h, h, bias, ctx, cache))
        if self.cross_attn is not None:
            x = self.residuals[1](
                x, lambda h: self.cross_attn(h, memory, memory_bias, NO_POSITIONS, cache, False)
            )
        return self.residuals[-1](x, self.ff)


class Transformer(nn.Module):
    """Token embedding → positional encoding → N blocks → final norm (pre-LN).

    Relative encodings act in self-attention; cross-attention sees no positions."""

    def __init__(
        self,
        cfg: Config,
        vocab: int,
        score: type[Score],
        encoding: PositionalEncoding,
        causal: bool,
        cross: bool = False,
    ):
        super().__init__()
        self.causal = causal
        self.embedding = nn.Embedding(vocab, cfg.d_model)
        self.encoding = encoding
        self.blocks = nn.ModuleList(Block(cfg, score, cross) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm == "pre" else nn.Identity()

    def forward(
        self,
        tokens: Tensor,  # (B, T): the newest T tokens
        pos: Tensor,  # (B or 1, ≥ start + T) position ids of the whole sequence
        key_pad: Tensor | None = None,  # (B, T) True at padding
        memory: Tensor | None = None,  # (B, S, d) encoder output
        memory_pad: Tensor | None = None,  # (B, S)
        cache: KVCache | None = None,
        segments: Tensor | None = None,  # (B, T) example of each token, where rows are packed
    ) -> Tensor:
        start = cache.length if cache is not None else 0
        T, device = tokens.shape[1], tokens.device
        pos_q, pos_k = pos[:, start : start + T], pos[:, : start + T]
        x = self.encoding.embed(self.embedding(tokens), pos_q)
        ctx = self.encoding.context(pos_q, pos_k, self.causal)
        bias = add_bias(mask_bias(start, T, start + T, self.causal, key_pad, device), ctx.bias)
        bias = add_bias(bias, segment_bias(segments))
        memory_bias = None
        if memory_pad is not None:
            memory_bias = mask_bias(0, T, memory.shape[1], False, memory_pad, device)
        for i, block in enumerate(self.blocks):
            layer_cache = cache.layers[i] if cache is not None else None
            x = block(x, bias, ctx, memory, memory_bias, layer_cache)
        if cache is not None:
            cache.length += T
        return self.norm(x)


@contextmanager
def record_attention(model: nn.Module):
    """Within the block, every attention layer appends its weights (B, H, Tq, Tk), as its
    score normalises them (`Score.weights`), to the yielded list, in call order."""
    recorded: list[Tensor] = []
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for layer in layers:
        layer.recorded = recorded
    try:
        yield recorded
    finally:
        for layer in layers:
            layer.recorded = None
