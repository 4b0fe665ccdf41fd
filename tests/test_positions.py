"""RoPE's rotation: the fast form is the pairwise formula of Su et al. 2021 bit for bit."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from attnstudy.position_context import Rotary
from attnstudy.positions import RotaryPositions
from attnstudy.registries import make_config


def pairwise_rotation(x, cos, sin):
    """Su et al.'s rotation of each pair (x1_i, x2_i) by its angle; cos, sin (…, d/2)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


@given(
    seed=st.integers(0, 2**31 - 1),
    heads=st.sampled_from([1, 2, 4]),
    length=st.integers(1, 50),
    max_position=st.integers(1, 10_000),
)
def test_rotation_is_the_pairwise_formula_bit_for_bit(seed, heads, length, max_position):
    gen = torch.Generator().manual_seed(seed)
    cfg = make_config(position="rope", d_model=16 * heads, heads=heads)
    rope = RotaryPositions(cfg, max_position + 1, length)
    pos = torch.randint(0, max_position + 1, (3, length), generator=gen)
    x = torch.randn(3, heads, length, 16, generator=gen) * 10
    cos, sin = rope._angles(pos)  # (3, 1, T, 16): each pair's angle twice
    half = 16 // 2
    expected = pairwise_rotation(x, cos[..., :half], sin[..., :half])
    assert torch.equal(Rotary._apply(x, cos, sin), expected)
