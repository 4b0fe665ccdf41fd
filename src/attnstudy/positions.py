"""Positional encodings, each one registered class behind two hooks.

- `embed(x, pos)`: add an absolute code to the token embeddings (sinusoidal, learned);
- `context(pos_q, pos_k, causal)`: the positional state one attention call needs —
  a logit bias (T5, ALiBi, FIRE), rotary angles (RoPE), relative key embeddings (Shaw)
  or a contextual term computed from each layer's own q and k (CoPE) — built once per
  forward pass and handed to every layer (while decoding, each self-attention layer also
  keeps its keys as rotated so far: `PositionalContext.decoding`).

Positions are integer ids (B, T). They are 0..T-1, or, with randomized positions
(Ruoss et al. 2023), for each sequence a sorted random subset of [0, max_random_position)
as long as that sequence: see `position_ids`.

An encoding is built with `max_positions` (ids any evaluation will use) and
`trained_positions` (ids one training sequence spans at most: the positions the longest
training example feeds its Transformer as input, so not a decoder's final EOS, which is
only a label; or the whole random range when randomized).
"""

from __future__ import annotations

import math
from functools import partial
from typing import ClassVar

import torch
from torch import Tensor, nn

from attnstudy.config import Config, ConfigError
from attnstudy.position_context import NO_POSITIONS, PositionalContext, RelativeKeys, Rotary


def relative_distance(pos_q: Tensor, pos_k: Tensor) -> Tensor:
    """(B, Tq, Tk) signed distance j − i between key and query positions."""
    return pos_k[:, None, :] - pos_q[:, :, None]


class PositionalEncoding(nn.Module):
    """Base class: the hooks every encoding overrides, identities by default (`embed`
    returns the token embeddings, `context` adds nothing to attention).

    What the rest of the code needs to know about an encoding is declared on its class:
    `family` ("none", "absolute", "relative" or "contextual": positions counted from the
    content, Golovneva et al. 2024), `takes_position_ids` (its output depends on the
    integer ids, so it can be randomized, Ruoss et al. 2023), `shift_invariant` (whether
    logits are unchanged when every position moves by the same offset, with a given score
    function) and `modern` (a length-generalisation variant of 2024 or later, which the
    report sets beside the classic ones)."""

    name: str
    family: ClassVar[str]
    takes_position_ids: ClassVar[bool] = False
    modern: ClassVar[bool] = False

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


class NoPositions(PositionalEncoding):
    """No positional information (NoPE, Kazemnejad et al. 2023): the identity hooks, so a
    causal model orders tokens by its mask alone."""

    name = "none"
    family = "none"


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

    k is cfg.relative_clip, by default the longest distance between positions a training
    sequence feeds as input (`default_clip`), so every trained distance has its own vector
    and longer ones reuse the farthest trained vector (how Shaw et al. extrapolate).
    `registries.make_config` resolves that default into the config, except where the
    Transformers of one model train on different lengths (an encoder-decoder whose task's
    input and target lengths differ): there the config keeps 0 and each side clips at
    its own."""

    name = "relative"
    family = "relative"
    takes_position_ids = True

    @classmethod
    def shift_invariant(cls, score):
        return True  # a_ij depends on clip(j − i) only, whatever the score does with it

    def __init__(self, cfg, max_positions, trained_positions):
        super().__init__(cfg, max_positions, trained_positions)
        self.clip = cfg.relative_clip or self.default_clip(trained_positions)
        d_head = cfg.d_model // cfg.heads
        self.table = nn.Parameter(torch.randn(2 * self.clip + 1, d_head) / math.sqrt(d_head))

    @staticmethod
    def default_clip(trained_positions: int) -> int:
        """The longest distance between `trained_positions` positions (at least 1)."""
        return max(1, trained_positions - 1)

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
        angle = torch.cat([angle, angle], dim=-1)  # (B, 1, T, d_head): each pair's angle twice
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


def fire_psi(x: Tensor, c: Tensor) -> Tensor:
    """FIRE's log transform ψ(x) = log(|c|·x + 1), for x ≥ 0."""
    return torch.log1p(c.abs() * x)


class FIREPositions(PositionalEncoding):
    """Li et al. 2024 (FIRE): a per-head bias f(ψ(i − j) / ψ(max(i, L))), f an MLP
    (inputs → 32 → heads, ReLU), ψ(x) = log(c·x + 1) with learnable c (initialised 0.1) and a
    learnable threshold L = |m|·L₀, m initialised 1 (as in the paper's code); here L₀ is
    the longest trained position (`trained_positions`), so within training the query
    normaliser is the constant ψ(L₀) and beyond it distances are progressively
    interpolated (ψ(i) grows with the query position i, which breaks shift invariance).

    Causal attention is the paper's form. Bidirectional extension: the MLP also reads the
    direction, 1 where the key follows the query (j > i), with the distance |i − j|; causal
    attention sees only keys with direction 0, so it reduces to the paper's form."""

    name = "fire"
    family = "relative"
    takes_position_ids = True
    modern = True
    width = 32
    init_c = 0.1
    eps = 1e-6

    def __init__(self, cfg, max_positions, trained_positions):
        super().__init__(cfg, max_positions, trained_positions)
        self.mlp = nn.Sequential(
            nn.Linear(2, self.width), nn.ReLU(), nn.Linear(self.width, cfg.heads)
        )
        self.c = nn.Parameter(torch.tensor(self.init_c))
        self.L_multiplier = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("L0", torch.tensor(float(trained_positions)), persistent=False)

    def features(self, pos_q: Tensor, pos_k: Tensor) -> Tensor:
        """(B, Tq, Tk, 2): the normalised distance ψ(|i − j|)/ψ(max(i, L)) and the direction."""
        distance = -relative_distance(pos_q, pos_k).float()  # i − j
        threshold = (self.L_multiplier * self.L0).abs()
        normaliser = fire_psi(torch.maximum(pos_q.float(), threshold), self.c)[:, :, None]
        scaled = fire_psi(distance.abs(), self.c) / (normaliser + self.eps)
        return torch.stack([scaled, (distance < 0).float()], dim=-1)

    def context(self, pos_q, pos_k, causal):
        bias = self.mlp(self.features(pos_q, pos_k))  # (B, Tq, Tk, H)
        return PositionalContext(bias=bias.permute(0, 3, 1, 2))


def interpolate(table_logits: Tensor, p: Tensor) -> Tensor:
    """Linear interpolation at fractional positions p (B, H, Tq, Tk) of logits given at the
    integer positions 0..P (B, H, Tq, P + 1)."""
    low = p.floor()
    w = p - low
    floor = torch.gather(table_logits, -1, low.long())
    ceil = torch.gather(table_logits, -1, p.ceil().long())
    return floor + w * (ceil - floor)


class ContextualPositions(PositionalEncoding):
    """Golovneva et al. 2024 (CoPE): positions counted by the content. Gates
    g_it = σ(q_i·k_t/√d_head) per head (scaled as in the paper's code); the position of key
    j for query i is p_ij = Σ_{t = j..i} g_it, fractional, clamped to npos; its logit term
    q_i·e[p_ij] interpolates linearly between the learned embeddings e[⌊p⌋] and e[⌈p⌉]
    (npos + 1 vectors of size d_head, initialised to zero as in the paper's code, shared by
    heads, and here by layers as Shaw's keys are). npos is the most positions a training
    sequence feeds as input (`trained_positions`): no training query counts further.

    The sum runs over the keys between j and i by sequence index, so keys a causal query may
    not see never enter it, and neither do padding keys (they follow every real token).
    Bidirectional extension: for a key after the query, p_ij = Σ_{t = i..j} g_it, with a
    second table of embeddings, so the two directions are told apart; causal attention uses
    the first table only. It reads no position ids, so it is not randomizable, and moving
    every id by an offset changes nothing."""

    name = "cope"
    family = "contextual"
    modern = True

    @classmethod
    def shift_invariant(cls, score):
        return True  # it never reads position ids

    def __init__(self, cfg, max_positions, trained_positions):
        super().__init__(cfg, max_positions, trained_positions)
        self.npos = trained_positions
        d_head = cfg.d_model // cfg.heads
        self.before = nn.Parameter(torch.zeros(self.npos + 1, d_head))  # keys j ≤ i
        self.after = nn.Parameter(torch.zeros(self.npos + 1, d_head))  # keys j > i

    def context(self, pos_q, pos_k, causal):
        return PositionalContext(contextual=partial(self.logits, causal=causal))

    def logits(self, q: Tensor, k: Tensor, causal: bool) -> Tensor:
        """q_i·e[p_ij] (B, H, Tq, Tk) for queries at the last Tq of the Tk key indices."""
        Tq, Tk = q.shape[2], k.shape[2]
        gates = torch.sigmoid(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
        i = torch.arange(Tk - Tq, Tk, device=q.device)[:, None]
        j = torch.arange(Tk, device=q.device)[None, :]
        past = j <= i  # (Tq, Tk)
        counted = (gates * past).flip(-1).cumsum(-1).flip(-1)  # Σ_{t = j..i}
        out = interpolate(q @ self.before.T, counted.clamp(max=self.npos))
        if causal:
            return out
        ahead = (gates * (j >= i)).cumsum(-1)  # Σ_{t = i..j}
        future = interpolate(q @ self.after.T, ahead.clamp(max=self.npos))
        return torch.where(past, out, future)


POSITIONS: dict[str, type[PositionalEncoding]] = {
    p.name: p
    for p in (
        NoPositions,
        SinusoidalPositions,
        LearnedPositions,
        ShawRelativePositions,
        T5Positions,
        RotaryPositions,
        ALiBiPositions,
        FIREPositions,
        ContextualPositions,
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
