"""What one attention call receives from the positional encoding (`PositionalContext`):
a logit bias, rotary angles (`Rotary`), Shaw's relative key embeddings (`RelativeKeys`) or
a contextual term from the layer's own queries and keys; and `SequenceBuffer`, the
decoding buffer into which a self-attention layer writes its keys, values and keys as
rotated, one step at a time. The encodings that build these are in positions.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class RelativeKeys:
    """Shaw et al. 2018: key embedding a_ij = table[index[b, i, j]] added to key j for query i."""

    table: Tensor  # (R, d_head) learnable, R = 2k + 1 clipped distances
    index: Tensor  # (B, Tq, Tk) long

    def rows(self, sl: slice) -> RelativeKeys:
        return RelativeKeys(self.table, self.index[:, sl])

    def logits(self, q: Tensor) -> Tensor:
        """q · a_ij for every (i, j): (B, H, Tq, d) → (B, H, Tq, Tk)."""
        qa = q @ self.table.T  # (B, H, Tq, R)
        index = self.index[:, None].expand(q.shape[0], q.shape[1], -1, -1)
        return torch.gather(qa, 3, index)


class SequenceBuffer:
    """A (B, H, capacity, d) tensor filled along the sequence while decoding: `extend(x)`
    writes x (B, H, T, d) after the rows written so far and returns every row written, a
    view (the earlier rows are not copied again, as torch.cat would copy them)."""

    def __init__(self, capacity: int):
        self.capacity, self.length = capacity, 0
        self.data: Tensor | None = None  # allocated at the first write, like x

    def extend(self, x: Tensor) -> Tensor:
        if self.data is None:
            B, H, _, d = x.shape
            self.data = x.new_empty(B, H, self.capacity, d)
        end = self.length + x.shape[2]
        self.data[:, :, self.length : end] = x
        self.length = end
        return self.data[:, :, :end]


@dataclass
class Rotary:
    """RoPE angles for queries and keys: (B, 1, T, d_head) each, the d_head/2 angles twice
    over, so that rotating is x·cos + half_turn(x)·sin. While decoding, `done` holds the
    layer's keys rotated at earlier steps (the same keys then as now), so each key is rotated
    once, at its own position."""

    cos_q: Tensor
    sin_q: Tensor
    cos_k: Tensor
    sin_k: Tensor
    done: SequenceBuffer | None = None

    @staticmethod
    def _apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Each pair (x1, x2) of x = [x1 | x2] rotated: [x1·cos − x2·sin | x2·cos + x1·sin].
        Bit for bit the pairwise formula: a + (−b)·c is a − b·c exactly in IEEE arithmetic;
        it takes 5 kernels where the pairwise one takes 7, backward included."""
        x1, x2 = x.chunk(2, dim=-1)
        half_turn = torch.cat([-x2, x1], dim=-1)
        return x * cos + half_turn * sin

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        q = self._apply(q, self.cos_q, self.sin_q)
        if self.done is None:
            return q, self._apply(k, self.cos_k, self.sin_k)
        n = self.done.length  # keys 0..n-1 were rotated at earlier steps
        new = self._apply(k[:, :, n:], self.cos_k[:, :, n:], self.sin_k[:, :, n:])
        return q, self.done.extend(new)


# (q (B, H, Tq, d_head), k (B, H, Tk, d_head)) → a logit term (B, H, Tq, Tk); the queries
# are the last Tq of the Tk keys (self-attention, incremental decoding included)
Contextual = Callable[[Tensor, Tensor], Tensor]


@dataclass
class PositionalContext:
    """What one attention call needs from the encoding; None means 'nothing to add'.

    `contextual` is the hook for encodings that need the layer's own queries and keys
    (CoPE): every score adds its term to the logits it computes, in every path (bilinear,
    fused, additive, chunked)."""

    bias: Tensor | None = None  # (B, H, Tq, Tk) added to the logits
    rotary: Rotary | None = None
    relative: RelativeKeys | None = None
    contextual: Contextual | None = None

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self.rotary.rotate(q, k) if self.rotary is not None else (q, k)

    def decoding(self, rotated: SequenceBuffer) -> PositionalContext:
        """This context for one self-attention layer while decoding: keys rotated at
        earlier steps are read from `rotated`, the new ones rotated and written to it."""
        if self.rotary is None:
            return self
        return replace(self, rotary=replace(self.rotary, done=rotated))

    def contextual_logits(self, q: Tensor, k: Tensor) -> Tensor | None:
        """The contextual encoding's logit term (B, H, Tq, Tk), or None."""
        return self.contextual(q, k) if self.contextual is not None else None


NO_POSITIONS = PositionalContext()
