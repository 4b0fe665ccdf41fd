"""How attnstudy.sequences lays examples out in rows for `batching: packed`: first fit
places every example, each contiguously with its own positions. That a packed batch computes
the padded batch's loss and gradient is test_packing.py's."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnstudy.sequences import IGNORE, first_fit, packed_rows


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=40))
def test_first_fit_places_every_example_in_a_row_without_overlap(lens):
    width = max(lens)
    place = first_fit(lens, width)
    used: dict[int, set[int]] = {}
    for n, (row, offset) in zip(lens, place, strict=True):
        cells = set(range(offset, offset + n))
        assert offset + n <= width
        assert not used.setdefault(row, set()) & cells
        used[row] |= cells
    fill = [len(cells) for cells in used.values()]
    assert sorted(used) == list(range(len(used)))  # rows numbered from 0, none empty
    # first fit: no two rows are both at most half full (one would have fitted the other)
    assert sum(2 * f <= width for f in fill) <= 1


def test_packed_rows_hold_each_example_contiguously_with_its_own_positions():
    lens = torch.tensor([3, 5, 1, 4, 2])
    tokens = torch.arange(5)[:, None] * 10 + torch.arange(5)[None, :]  # example b, index j
    pos = torch.arange(5)[None, :] + 100
    rows = packed_rows(lens, tokens, tokens.clone(), pos)
    assert rows.tokens.shape[1] == 5 and rows.tokens.shape[0] == 3  # 15 tokens in rows of 5
    for b, n in enumerate(lens.tolist()):
        at = rows.segments == b
        assert int(at.sum()) == n
        assert rows.tokens[at].tolist() == [10 * b + j for j in range(n)]
        assert rows.pos[at].tolist() == [100 + j for j in range(n)]
    assert (rows.labels[rows.segments == -1] == IGNORE).all()
