"""Attention score functions, every one behind the same interface.

A score maps queries and keys (B, H, T, d_head) to logits (B, H, Tq, Tk) and normalises
them: `weights(logits, bias)` gives the attention weights (B, H, Tq, Tk), by default
softmax(logits + bias). `bias` is one additive tensor: −inf for masked keys, plus any
positional bias; a normaliser that needs n, the number of keys a query may see, counts the
finite entries of its row (`visible_keys`); a query that may see no key (left padding in a
causal model) weighs every key 0, a zero row, not NaN. `attend` returns weights @ v. The logits
include every positional term that needs q or k (Shaw's relative keys, a contextual
encoding's term: `PositionalContext`).

The bilinear scores (dot, scaled_dot, cosine, general, and the length-aware normalisers
sigmoid and ssmax) are `s · q'·k'` after a per-score transform of q and k. Where the
normaliser is plain softmax (`softmax`, a class fact) they run through
`F.scaled_dot_product_attention` (the fused kernel; on CPU, tiny problems take the explicit
path, which is faster there); the others take the explicit path. `additive` is not
bilinear; it is computed explicitly, in query chunks so its (B, H, Tq, Tk, d) intermediate
stays bounded.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnstudy.position_context import PositionalContext, RelativeKeys

# Up to this many logits per head (Tq·Tk; 24² covers the quick study's training lengths),
# plain matmul + softmax is faster on CPU than the fused kernel, whose per-call set-up
# dominates tiny problems (`attnstudy bench`, section 2). Both compute the same function.
CPU_EXPLICIT_MAX_LOGITS = 576


def add_bias(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def blind_rows(bias: Tensor) -> Tensor | None:
    """(…, Tq, 1) True where a query may see no key, its bias row all −inf (padding before a
    causal model's first real token), or None where every query sees one: on the CPU the
    usual case costs one reduction over the bias and no pass over the logits. On another
    device the mask is returned unread, since reading `any` back would wait for the device
    in every layer (at every step, while decoding); masking rows that see a key changes
    no bit of them."""
    blind = bias.amax(-1, keepdim=True) == float("-inf")
    return blind if bias.device.type != "cpu" or blind.any() else None


def visible_keys(logits: Tensor, bias: Tensor | None) -> Tensor:
    """n, the number of keys each query may see: the finite entries of its bias row (all
    Tk keys without a bias), at least 1; shape (…, Tq or 1, 1), broadcasting with logits."""
    if bias is None:
        return logits.new_full((1, 1), logits.shape[-1])
    return bias.isfinite().sum(-1, keepdim=True).clamp_min(1).to(logits.dtype)


class Score(nn.Module):
    """Base class: a score computes `logits`; `weights` normalises them; `attend` returns
    weights @ v.

    Class facts: `bilinear` says the logits are a bilinear form of (transformed) q and k,
    which rotary positions need to be relative; `softmax` says `weights` is plain
    softmax(logits + bias), so fused softmax kernels compute the same function; `modern`
    marks the length-aware variants of 2024 and later, which the report sets beside the
    classic ones."""

    name: str
    bilinear: ClassVar[bool] = False
    softmax: ClassVar[bool] = True
    modern: ClassVar[bool] = False

    def __init__(self, d_head: int, heads: int):
        super().__init__()
        self.d_head, self.heads = d_head, heads

    def logits(self, q: Tensor, k: Tensor, ctx: PositionalContext) -> Tensor:
        raise NotImplementedError

    def weights(self, logits: Tensor, bias: Tensor | None) -> Tensor:
        """Attention weights (B, H, Tq, Tk): softmax(logits + bias); a query that may see no
        key weighs every key 0."""
        blind = None if bias is None else blind_rows(bias)
        if blind is None:
            return torch.softmax(logits if bias is None else logits + bias, dim=-1)
        # a row of −inf would give NaN: softmax it at 0 instead, then zero it
        return torch.softmax(logits + bias.masked_fill(blind, 0.0), dim=-1).masked_fill(blind, 0.0)

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, ctx: PositionalContext
    ) -> Tensor:
        """weights(logits, bias) @ v."""
        return self.weights(self.logits(q, k, ctx), bias) @ v


class BilinearScore(Score):
    """logits = scale · q'·k' (+ scale · q'·a_ij for Shaw relative keys, + a contextual
    encoding's term), where (q', k', scale) = project(q, k). RoPE rotates q' and k'."""

    bilinear = True

    def project(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor, float]:
        raise NotImplementedError

    def _prepare(self, q, k, ctx):
        q, k, scale = self.project(q, k)
        q, k = ctx.rotate(q, k)
        return q, k, scale

    def _positional(self, q, k, qp, scale, ctx) -> Tensor | None:
        """The logit terms positions add: Shaw's scale·q'·a_ij from the prepared query qp,
        and a contextual encoding's term from the layer's own q and k."""
        relative = scale * ctx.relative.logits(qp) if ctx.relative is not None else None
        return add_bias(relative, ctx.contextual_logits(q, k))

    def logits(self, q, k, ctx):
        qp, kp, scale = self._prepare(q, k, ctx)
        return add_bias(scale * (qp @ kp.transpose(-2, -1)), self._positional(q, k, qp, scale, ctx))

    def attend(self, q, k, v, bias, ctx):
        if not self.softmax:
            return super().attend(q, k, v, bias, ctx)
        qp, kp, scale = self._prepare(q, k, ctx)
        bias = add_bias(bias, self._positional(q, k, qp, scale, ctx))
        if bias is not None:
            bias = bias.to(q.dtype)
        if q.device.type == "cpu" and q.shape[2] * k.shape[2] <= CPU_EXPLICIT_MAX_LOGITS:
            return self.weights(scale * (qp @ kp.transpose(-2, -1)), bias) @ v
        blind = None if bias is None else blind_rows(bias)
        if blind is None:
            return F.scaled_dot_product_attention(qp, kp, v, attn_mask=bias, scale=scale)
        # the kernels differ on rows of −inf (NaN or 0): attend at 0 instead, then zero them
        y = F.scaled_dot_product_attention(
            qp, kp, v, attn_mask=bias.masked_fill(blind, 0.0), scale=scale
        )
        return y.masked_fill(blind, 0.0)


class DotScore(BilinearScore):
    """Luong et al. 2015 'dot': q·k, unscaled."""

    name = "dot"

    def project(self, q, k):
        return q, k, 1.0


class ScaledDotScore(BilinearScore):
    """Vaswani et al. 2017: q·k / √d_head."""

    name = "scaled_dot"

    def project(self, q, k):
        return q, k, 1.0 / math.sqrt(self.d_head)


class CosineScore(BilinearScore):
    """Cosine similarity times a learnable per-head temperature τ (QK-norm, Henry et
    al. 2020). τ starts at 10, so attention is sharp enough to learn from the start
    (a fixed 1/√d would make it near uniform). Shaw keys are added to the normalised key."""

    name = "cosine"

    def __init__(self, d_head, heads):
        super().__init__(d_head, heads)
        self.log_tau = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))

    def project(self, q, k):
        # τ·q/|q| and k/|k|; τ joins q's per-row scale: one full-size product per tensor
        return q * (self.log_tau.exp() * inverse_norm(q)), k * inverse_norm(k), 1.0


def inverse_norm(x: Tensor) -> Tensor:
    """1 / max(|x|, 1e-12) over the last dimension, as in F.normalize: (…, d) → (…, 1)."""
    return torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(1e-24))


class GeneralScore(BilinearScore):
    """Luong et al. 2015 'general': q·W·k with a learnable W per head."""

    name = "general"

    def __init__(self, d_head, heads):
        super().__init__(d_head, heads)
        self.W = nn.Parameter(torch.randn(heads, d_head, d_head) / d_head)

    def project(self, q, k):
        return q @ self.W, k, 1.0  # (B, H, T, d) @ (H, d, d)


class AdditiveScore(Score):
    """Bahdanau et al. 2015 'concat': v·tanh(W1·q + W2·k) per head. Shaw relative keys
    enter as W2·(k + a_ij); RoPE rotates q and k before the projections."""

    name = "additive"
    min_chunk_elements = 2**19  # small problems (training lengths) run in one chunk

    def __init__(self, d_head, heads):
        super().__init__(d_head, heads)
        self.W1 = nn.Parameter(torch.randn(heads, d_head, d_head) / math.sqrt(d_head))
        self.W2 = nn.Parameter(torch.randn(heads, d_head, d_head) / math.sqrt(d_head))
        self.v = nn.Parameter(torch.randn(heads, d_head, 1) / math.sqrt(d_head))

    def _energy(self, wq: Tensor, wk: Tensor, relative: RelativeKeys | None) -> Tensor:
        """(B, H, Tq, d) projected queries, (B, H, Tk, d) projected keys → (B, H, Tq, Tk)."""
        hidden = wq[:, :, :, None, :] + wk[:, :, None, :, :]  # (B, H, Tq, Tk, d)
        if relative is not None:
            wa = relative.table @ self.W2  # (H, R, d)
            hidden += wa[:, relative.index].transpose(0, 1)
        # in place: one (B, H, Tq, Tk, d) block, not two (the sum is not needed for backward)
        return (hidden.tanh_() @ self.v[:, None]).squeeze(-1)

    def logits(self, q, k, ctx):
        contextual = ctx.contextual_logits(q, k)
        q, k = ctx.rotate(q, k)
        return add_bias(self._energy(q @ self.W1, k @ self.W2, ctx.relative), contextual)

    def chunk_size(self, q: Tensor, k: Tensor) -> int:
        """Queries per chunk, so one (B, H, chunk, Tk, d) block holds no more elements than
        a (B, H, Tq, Tk) logits tensor (or min_chunk_elements)."""
        B, H, Tq, _ = q.shape
        budget = max(B * H * Tq * k.shape[2], self.min_chunk_elements)
        return max(1, budget // (B * H * k.shape[2] * self.d_head))

    def attend(self, q, k, v, bias, ctx):
        """Bounded memory: the tanh block is built for one chunk of queries at a time (a
        contextual term, (B, H, Tq, Tk) like the logits, is computed once and sliced)."""
        contextual = ctx.contextual_logits(q, k)
        q, k = ctx.rotate(q, k)
        wq, wk = q @ self.W1, k @ self.W2
        step, outs = self.chunk_size(q, k), []
        for start in range(0, q.shape[2], step):
            sl = slice(start, start + step)
            relative = ctx.relative.rows(sl) if ctx.relative is not None else None
            logits = self._energy(wq[:, :, sl], wk, relative)
            logits = add_bias(logits, _bias_rows(contextual, sl))
            outs.append(self.weights(logits, _bias_rows(bias, sl)) @ v)
        return torch.cat(outs, dim=2)


def _bias_rows(bias: Tensor | None, sl: slice) -> Tensor | None:
    """The bias for a slice of query rows (a bias with one row broadcasts)."""
    return bias if bias is None or bias.shape[-2] == 1 else bias[..., sl, :]


class SigmoidScore(ScaledDotScore):
    """Ramapuram et al. 2024: sigmoid attention, σ(q·k/√d_head + b) element-wise, with
    b = −log n, n the number of keys the query may see (so a uniform row sums to about 1
    at every length). Masked keys weigh σ(−∞) = 0; rows need not sum to 1."""

    name = "sigmoid"
    softmax = False
    modern = True

    def weights(self, logits, bias):
        logits = logits - visible_keys(logits, bias).log()
        return torch.sigmoid(logits if bias is None else logits + bias)


class ScalableSoftmaxScore(ScaledDotScore):
    """Nakanishi 2025: scalable softmax, softmax((s·log n)·q·k/√d_head + bias), with a
    learnable s per head (initialised to 1) and n the number of keys the query may see, so
    causal rows differ. The factor multiplies every logit the score computes (positional
    terms that need q or k included), not the additive bias (mask, T5, ALiBi, FIRE)."""

    name = "ssmax"
    softmax = False
    modern = True

    def __init__(self, d_head, heads):
        super().__init__(d_head, heads)
        self.s = nn.Parameter(torch.ones(heads, 1, 1))

    def weights(self, logits, bias):
        return super().weights(self.s * visible_keys(logits, bias).log() * logits, bias)


SCORES: dict[str, type[Score]] = {
    s.name: s
    for s in (
        DotScore,
        ScaledDotScore,
        CosineScore,
        GeneralScore,
        AdditiveScore,
        SigmoidScore,
        ScalableSoftmaxScore,
    )
}
