"""Positional encodings, each one registered class behind three hooks.

- `embed(x, pos)`: add an absolute code to the token embeddings (sinusoidal, learned);
- `context(pos_q, pos_k, causal)`: the positional state one attention call needs —
  a logit bias (T5, ALiBi), rotary angles (RoPE) or relative key embeddings (Shaw) —
  computed once per forward pass and handed to every layer.

Positions are integer ids (B, T). They are 0..T-1, or, with randomized positions
(Ruoss et al. 2023), for each sequence a sorted random subset of [0, max_random_position)
as long as that sequence: see `position_ids`.

An encoding is built with `max_positions` (ids any evaluation will use) and
`trained_positions` (ids one training sequence spans at most: the longest training
sequence, or the whole random range when randomized).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from attnstudy.config import Config, ConfigError


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


@dataclass
class Rotary:
    """RoPE angles for queries and keys: (B, 1, T, d_head/2) each."""

    cos_q: Tensor
    sin_q: Tensor
    cos_k: Tensor
    sin_k: Tensor

    @staticmethod
    def _apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self._apply(q, self.cos_q, self.sin_q), self._apply(k, self.cos_k, self.sin_k)


@dataclass
class PositionalContext:
    """What one attention call needs from the encoding; None means 'nothing to add'."""

    bias: Tensor | None = None  # (B, H, Tq, Tk) added to the logits
    rotary: Rotary | None = None
    relative: RelativeKeys | None = None

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self.rotary.rotate(q, k) if self.rotary is not None else (q, k)


NO_POSITIONS = PositionalContext()


def relative_distance(pos_q: Tensor, pos_k: Tensor) -> Tensor:
    """(B, Tq, Tk) signed distance j − i between key and query positions."""
    return pos_k[:, None, :] - pos_q[:, :, None]


class PositionalEncoding(nn.Module):
    """No positional information: the identity hooks every encoding starts from.

    What the rest of the code needs to know about an encoding is declared on its class:
    `family` ("none", "absolute" or "relative"), `takes_position_ids` (its output depends
    on the integer ids, so it can be randomized, Ruoss et al. 2023) and `shift_invariant`
    (whether logits are unchanged when every position moves by the same offset, with a
    given score function)."""

    name = "none"
    family: ClassVar[str] = "none"
    takes_position_ids: ClassVar[bool] = False

    def __init__(self, cfg: Config, max_positions: int, trained_positions: int):
        super().__init__()
        self.d_model, self.heads = cfg.d_model, cfg.heads
        self.max_positions = max_positions

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        """Raise ConfigError if this encoding cannot run with cfg."""

    @classmethod
    def shift_invariant(cls, score: type) -> bool:
        """True if, with this score class, attention depends on positions only through
        differences j − i. No positions at all is trivially invariant; absolute codes never
        are; a relative encoding says for itself."""
        return cls.family == "none"

    def embed(self, x: Tensor, pos: Tensor) -> Tensor:
        return x

    def context(self, pos_q: Tensor, pos_k: Tensor, causal: bool) -> PositionalContext:
        return NO_POSITIONS


class SinusoidalPositions(PositionalEncoding):
    """Vaswani et al. 2017: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(…)."""

    name = "sinusoidal"
    family = "absolute"
    takes_position_ids = True

    def embed(self, x, pos):
        half = torch.arange(0, self.d_model, 2, device=x.device, dtype=x.dtype)
        freq = torch.exp(-math.log(10000.0) * half / self.d_model)  # (d/2,)
        angle = pos[..., None].to(x.dtype) * freq  # (B, T, d/2)
        pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)  # interleaved
        return x + pe

    @classmethod
    def check_config(cls, cfg):
        if cfg.d_model % 2:
            raise ConfigError(f"position=sinusoidal: d_model must be even, got {cfg.d_model}")


class LearnedPositions(PositionalEncoding):
    """A learnable table of absolute position vectors, one row per position any
    evaluation will use, initialised N(0, 0.02²) as in BERT and GPT-2 (a unit-variance
    table drowns the token embeddings; with randomized positions it learned copy at half
    the speed). Rows past the longest trained position receive no gradient and keep their
    initial values (claim C9)."""

    init_std = 0.02

    name = "learned"
    family = "absolute"
    takes_position_ids = True

    def __init__(self, cfg, max_positions, trained_positions):
        super().__init__(cfg, max_positions, trained_positions)
        self.table = nn.Embedding(max_positions, cfg.d_model)
        nn.init.normal_(self.table.weight, std=self.init_std)

    def embed(self, x, pos):
        return x + self.table(pos)


class ShawRelativePositions(PositionalEncoding):
    """Shaw et al. 2018: a learnable embedding of the clipped distance clip(j − i, ±k),
    added to the key inside the score (shared by heads and layers).

    k is cfg.relative_clip, or by default (0) the longest distance in a training
    sequence, so every trained distance has its own vector and longer ones reuse the
    farthest trained vector (how Shaw et al. extrapolate)."""

    name = "relative"
    family = "relative"
    takes_position_ids = True

    @classmethod
    def shift_invariant(cls, score):
        return True  # a_ij depends on clip(j − i) only, whatever the score does with it

    def __init__(self, cfg, max_positions, trained_positions):
        super().__init__(cfg, max_positions, trained_positions)
        self.clip = cfg.relative_clip or max(1, trained_positions - 1)
        d_head = cfg.d_model // cfg.heads
        self.table = nn.Parameter(torch.randn(2 * self.clip + 1, d_head) / math.sqrt(d_head))

    def context(self, pos_q, pos_k, causal):
        index = relative_distance(pos_q, pos_k).clamp(-self.clip, self.clip) + self.clip
        return PositionalContext(relative=RelativeKeys(self.table, index))


def t5_bucket(distance: Tensor, bidirectional: bool, buckets: int, max_distance: int) -> Tensor:
    """Raffel et al. 2020: exact buckets for small |j − i|, log-spaced up to max_distance."""
    offset = torch.zeros_like(distance)
    if bidirectional:
        buckets //= 2
        offset = (distance > 0).long() * buckets  # keys after the query use the upper half
        n = distance.abs()
    else:
        n = (-distance).clamp(min=0)  # causal: only keys at or before the query
    exact = buckets // 2
    log_ratio = torch.log(n.float().clamp(min=1) / exact) / math.log(max_distance / exact)
    large = (exact + (log_ratio * (buckets - exact)).long()).clamp(max=buckets - 1)
    return offset + torch.where(n < exact, n, large)


class T5Positions(PositionalEncoding):
    """T5 relative bias: a learnable per-head scalar per distance bucket."""

    name = "t5"
    family = "relative"
    takes_position_ids = True

    @classmethod
    def shift_invariant(cls, score):
        return True  # a bias of the bucketed j − i, added after the score

    def __init__(self, cfg, max_positions, trained_positions):
        super().__init__(cfg, max_positions, trained_positions)
        self.buckets, self.max_distance = cfg.t5_buckets, cfg.t5_max_distance
        self.bias = nn.Embedding(cfg.t5_buckets, cfg.heads)
        nn.init.zeros_(self.bias.weight)

    def context(self, pos_q, pos_k, causal):
        distance = relative_distance(pos_q, pos_k)
        bucket = t5_bucket(distance, not causal, self.buckets, self.max_distance)
        return PositionalContext(bias=self.bias(bucket).permute(0, 3, 1, 2))  # (B, H, Tq, Tk)


class RotaryPositions(PositionalEncoding):
    """Su et al. 2021 (RoPE, base 10000): rotate q and k by angles proportional to position."""

    name = "rope"
    family = "relative"
    takes_position_ids = True
    base = 10000.0

    @classmethod
    def shift_invariant(cls, score):
        """Rotations cancel to R(j − i) only inside a bilinear form q'·k'; a nonlinearity
        applied to the rotated vectors (additive's tanh) sees absolute angles."""
        return getattr(score, "bilinear", False)

    @classmethod
    def check_config(cls, cfg):
        if (cfg.d_model // cfg.heads) % 2:
            raise ConfigError(
                f"position=rope: d_model/heads must be even, got {cfg.d_model}/{cfg.heads}"
            )

    def _angles(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        d_head = self.d_model // self.heads
        freq = self.base ** (-torch.arange(0, d_head, 2, device=pos.device).float() / d_head)
        angle = pos[:, None, :, None].float() * freq  # (B, 1, T, d_head/2)
        return angle.cos(), angle.sin()

    def context(self, pos_q, pos_k, causal):
        return PositionalContext(rotary=Rotary(*self._angles(pos_q), *self._angles(pos_k)))


def alibi_slopes(heads: int) -> list[float]:
    """Press et al. 2022: for H a power of two, the geometric slopes 2^(−8h/H), h = 1..H;
    otherwise the slopes of the closest lower power of two, then every other slope of the
    next power of two (as in their reference code)."""
    closest = 2 ** math.floor(math.log2(heads))
    slopes = [2.0 ** (-8.0 * h / closest) for h in range(1, closest + 1)]
    if heads > closest:
        slopes += alibi_slopes(2 * closest)[0::2][: heads - closest]
    return slopes


class ALiBiPositions(PositionalEncoding):
    """Press et al. 2022: bias −m_h·|j − i| with the head slopes of `alibi_slopes`.
    For causal attention only j ≤ i is visible, so this is the causal form; for
    bidirectional attention it is the symmetric form."""

    name = "alibi"
    family = "relative"
    takes_position_ids = True

    @classmethod
    def shift_invariant(cls, score):
        return True  # a bias of |j − i|, added after the score

    def __init__(self, cfg, max_positions, trained_positions):
        super().__init__(cfg, max_positions, trained_positions)
        slopes = torch.tensor(alibi_slopes(cfg.heads))
        self.register_buffer("slopes", slopes[None, :, None, None], persistent=False)

    def context(self, pos_q, pos_k, causal):
        distance = relative_distance(pos_q, pos_k).abs()[:, None].float()  # (B, 1, Tq, Tk)
        return PositionalContext(bias=-self.slopes * distance)


POSITIONS: dict[str, type[PositionalEncoding]] = {
    p.name: p
    for p in (
        PositionalEncoding,
        SinusoidalPositions,
        LearnedPositions,
        ShawRelativePositions,
        T5Positions,
        RotaryPositions,
        ALiBiPositions,
    )
}


def position_ids(
    lens: Tensor, max_random_position: int, gen: torch.Generator | None, device: torch.device
) -> Tensor:
    """Position ids of sequences of lengths lens (B,), padded to T = max(lens).

    (1, T) ids 0..T-1, shared by the batch (so biases, rotations and relative indices are
    computed once and broadcast), or (Ruoss et al. 2023) when max_random_position > 0,
    (B, T): for each row a sorted random subset of [0, max_random_position) of that row's
    own length, so an example gets the same kind of ids in a padded training batch as
    alone in evaluation. Columns past a row's length (padding, masked or ignored) get 0."""
    width = int(lens.max())
    if max_random_position <= 0:
        return torch.arange(width, device=device)[None, :]
    keys = torch.rand(len(lens), max_random_position, generator=gen)
    ids = keys.topk(width, dim=1).indices  # the first lens[b] of row b: a uniform subset
    pad = torch.arange(width)[None, :] >= lens.cpu()[:, None]
    ids = ids.masked_fill(pad, max_random_position).sort(dim=1).values  # padding sorts last
    return ids.masked_fill(pad, 0).to(device)
