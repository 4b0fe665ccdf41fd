"""Synthetic sequence tasks, generated on the fly from a seeded `torch.Generator`.

Every task is one registered class. `sample(n, gen)` takes a length per example and
returns a padded `Batch` of (input, target) token ids. The *length* n of an example is
the task's size parameter (symbols to copy, digits per operand, key-value pairs); the
token lengths follow from it through `input_len(n)` and `target_len(n)`, which depend on
n only, so every example of one length has the same shapes.

Token ids 0..4 are shared specials (PAD, SEP, EOS, BLANK, BOS); task symbols start at 5.
A task whose target copies input tokens in a fixed order declares it (`aligned_source`),
so attention alignment can be measured against the expected source position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PAD, SEP, EOS, BLANK, BOS = 0, 1, 2, 3, 4
NUM_SPECIAL = 5


@dataclass
class Batch:
    inputs: Tensor  # (B, Tin) long, PAD past each example's input length
    input_lens: Tensor  # (B,)
    targets: Tensor  # (B, Tout) long, PAD past each example's target length
    target_lens: Tensor  # (B,)

    def to(self, device: torch.device) -> Batch:
        return Batch(
            *(t.to(device) for t in (self.inputs, self.input_lens, self.targets, self.target_lens))
        )


def _arange_mask(lens: Tensor, width: int) -> Tensor:
    """(B, width) bool: True where column < lens[b]."""
    return torch.arange(width, device=lens.device)[None, :] < lens[:, None]


def _random_symbols(n: Tensor, num: int, gen: torch.Generator) -> Tensor:
    """(B, max n) symbol ids in [NUM_SPECIAL, NUM_SPECIAL + num), PAD past each length."""
    width = int(n.max())
    x = torch.randint(NUM_SPECIAL, NUM_SPECIAL + num, (len(n), width), generator=gen)
    return x.masked_fill(~_arange_mask(n, width), PAD)


def _gather_rows(x: Tensor, index: Tensor, valid: Tensor) -> Tensor:
    """out[b, j] = x[b, index[b, j]] where valid, PAD elsewhere."""
    index = index.expand(x.shape[0], -1).clamp(0, x.shape[1] - 1)
    return torch.gather(x, 1, index).masked_fill(~valid, PAD)


class Task:
    name: str
    num_symbols: int = 10
    long_range: bool = False  # answers depend on tokens far back by content (claim C10)
    order_free: bool = False  # the answer depends only on the bag of input tokens (sort)

    def __init__(self, max_len: int):
        self.max_len = max_len  # longest n this task will be asked for (sizes alphabets)

    @property
    def vocab_size(self) -> int:
        return NUM_SPECIAL + self.num_symbols

    def input_len(self, n: int) -> int:
        return n

    def target_len(self, n: int) -> int:
        return n

    def aligned_source(self, n: int) -> list[int] | None:
        """The input index that target token j copies, for j < target_len(n), when the
        answer is aligned to the input (copy, reverse); None when it is not."""
        return None

    def sample(self, n: Tensor, gen: torch.Generator) -> Batch:
        inputs, targets = self.generate(n, gen)
        in_lens = torch.as_tensor(self.input_len(n)).expand(len(n))
        out_lens = torch.as_tensor(self.target_len(n)).expand(len(n))
        return Batch(inputs, in_lens, targets, out_lens)

    def generate(self, n: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Copy(Task):
    """w → w."""

    name = "copy"

    def aligned_source(self, n):
        return list(range(n))

    def generate(self, n, gen):
        x = _random_symbols(n, self.num_symbols, gen)
        return x, x.clone()


class Reverse(Task):
    """w → reverse(w)."""

    name = "reverse"

    def aligned_source(self, n):
        return list(range(n - 1, -1, -1))

    def generate(self, n, gen):
        x = _random_symbols(n, self.num_symbols, gen)
        j = torch.arange(x.shape[1])[None, :]
        return x, _gather_rows(x, n[:, None] - 1 - j, j < n[:, None])


class Sort(Task):
    """w → the symbols of w in ascending order."""

    name = "sort"
    order_free = True

    def generate(self, n, gen):
        x = _random_symbols(n, self.num_symbols, gen)
        big = NUM_SPECIAL + self.num_symbols
        y = torch.sort(x.masked_fill(x == PAD, big), dim=1).values
        return x, y.masked_fill(y == big, PAD)


class Duplicate(Task):
    """w → ww."""

    name = "duplicate"

    def target_len(self, n):
        return 2 * n

    def generate(self, n, gen):
        x = _random_symbols(n, self.num_symbols, gen)
        j = torch.arange(2 * x.shape[1])[None, :]
        return x, _gather_rows(x, j % n[:, None], j < 2 * n[:, None])


class Addition(Task):
    """Decimal addition of two n-digit numbers, digits least significant first:
    `a_0 … a_{n-1} + b_0 … b_{n-1}` → the n + 1 digits of a + b, reversed."""

    name = "addition"
    num_symbols = 11  # digits 0-9 and '+'
    PLUS = NUM_SPECIAL + 10

    def input_len(self, n):
        return 2 * n + 1

    def target_len(self, n):
        return n + 1

    def generate(self, n, gen):
        B, width = len(n), int(n.max())
        valid = _arange_mask(n, width)
        a = torch.randint(0, 10, (B, width), generator=gen) * valid
        b = torch.randint(0, 10, (B, width), generator=gen) * valid
        total = torch.zeros(B, width + 1, dtype=torch.long)
        carry = torch.zeros(B, dtype=torch.long)
        for i in range(width):
            s = a[:, i] + b[:, i] + carry
            total[:, i], carry = s % 10, s // 10
        total[:, width] = carry  # digits past n are 0, so total[:, n] holds each final carry
        p = torch.arange(2 * width + 1)[None, :]
        n_ = n[:, None]
        x = torch.where(p < n_, _gather_rows(a, p, p < n_), PAD)
        x = torch.where(p == n_, self.PLUS - NUM_SPECIAL, x)
        x = torch.where((p > n_) & (p <= 2 * n_), _gather_rows(b, p - n_ - 1, p > n_), x)
        x = torch.where(p <= 2 * n_, x + NUM_SPECIAL, PAD)
        y = torch.where(_arange_mask(n + 1, width + 1), total + NUM_SPECIAL, PAD)
        return x, y


class AssociativeRecall(Task):
    """`k_1 v_1 … k_n v_n q` → the value stored under key q (keys distinct).

    The queried pair is uniform over the n pairs, so the answer can sit up to 2n tokens
    before the query: the long-range dependency of claim C10.
    """

    name = "associative_recall"
    num_values = 10
    long_range = True

    @property
    def num_keys(self) -> int:
        return max(16, self.max_len)

    @property
    def num_symbols(self) -> int:  # type: ignore[override]
        return self.num_keys + self.num_values

    def input_len(self, n):
        return 2 * n + 1

    def target_len(self, n):
        return 1

    def key_values(self, n: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(B, max n) distinct keys per example and (B, max n) values, as token ids."""
        B, width = len(n), int(n.max())
        keys = torch.rand(B, self.num_keys, generator=gen).argsort(dim=1)[:, :width]
        values = torch.randint(0, self.num_values, (B, width), generator=gen)
        return keys + NUM_SPECIAL, values + NUM_SPECIAL + self.num_keys

    def generate(self, n, gen):
        B, width = len(n), int(n.max())
        keys, values = self.key_values(n, gen)
        pick = (torch.rand(B, generator=gen) * n).long()  # which pair is queried
        pairs = torch.stack([keys, values], dim=2).reshape(B, 2 * width)
        x = torch.cat([pairs, torch.full((B, 1), PAD)], dim=1)
        x = x.masked_fill(~_arange_mask(2 * n, 2 * width + 1), PAD)
        x.scatter_(1, (2 * n)[:, None], keys.gather(1, pick[:, None]))
        return x, values.gather(1, pick[:, None])


class SortedRecall(AssociativeRecall):
    """`k_1 v_1 … k_n v_n` → `k_(1) v_(1) … k_(n) v_(n)`: the pairs in ascending key order.

    Multi-query recall (Arora et al. 2023, "Zoology") whose queries need no input of their
    own: each key of the answer is the next larger key (a sort step), and the value after it
    must be looked up where that key stood in the input, up to 2n tokens back and at no
    fixed offset. Every example supervises n lookups rather than one.
    """

    name = "sorted_recall"

    def input_len(self, n):
        return 2 * n

    def target_len(self, n):
        return 2 * n

    def generate(self, n, gen):
        B, width = len(n), int(n.max())
        keys, values = self.key_values(n, gen)
        padding = ~_arange_mask(2 * n, 2 * width)
        pairs = torch.stack([keys, values], dim=2).reshape(B, 2 * width)
        order = keys.masked_fill(~_arange_mask(n, width), self.vocab_size).argsort(dim=1)
        sorted_pairs = torch.stack([keys.gather(1, order), values.gather(1, order)], dim=2)
        y = sorted_pairs.reshape(B, 2 * width)  # padding keys sort last
        return pairs.masked_fill(padding, PAD), y.masked_fill(padding, PAD)


TASKS: dict[str, type[Task]] = {
    t.name: t for t in (Copy, Reverse, Sort, Duplicate, Addition, AssociativeRecall, SortedRecall)
}


def build_task(name: str, max_len: int) -> Task:
    return TASKS[name](max_len)


def sample_lengths(lo: int, hi: int, batch_size: int, gen: torch.Generator) -> Tensor:
    """(B,) training lengths, uniform over [lo, hi]."""
    return torch.randint(lo, hi + 1, (batch_size,), generator=gen)


def one_length(lo: int, hi: int, batch_size: int, gen: torch.Generator) -> Tensor:
    """(B,) one training length for the whole batch, uniform over [lo, hi]: each example's
    length is distributed as under `sample_lengths`, and no token of the step is padding
    (Ruoss et al. 2023 train one length per step)."""
    n = int(torch.randint(lo, hi + 1, (1,), generator=gen))
    return torch.full((batch_size,), n, dtype=torch.long)


LENGTH_SAMPLERS = {  # keys: config.BATCHINGS
    "padded": sample_lengths,
    "by_length": one_length,
    "packed": sample_lengths,
}
