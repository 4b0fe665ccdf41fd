"""What every architecture shares: the `Arch` base class (vocabulary head, position ids,
config checks, and the facts the analysis reads), and the helpers that lay out a task's
variable-length pieces as sequences (`pack`, `repeated`) and decode greedily (`greedy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnstudy.config import Config, ConfigError
from attnstudy.positions import PositionalEncoding, position_ids
from attnstudy.scores import Score
from attnstudy.tasks import PAD, Batch, Task

IGNORE = -100  # label of positions that carry no loss

EncodingFactory = Callable[[int, int], PositionalEncoding]  # (max, trained positions)


@dataclass(frozen=True)
class AttentionLayout:
    """Where one example sits in what an architecture's attention layers of one kind
    ("self" or "cross") see: the key index of each input token, the index of the query
    that predicts (or reads) each target token, and how many keys each such query may
    attend to. For self-attention the keys are the whole sequence fed to the model."""

    kind: str
    keys: int
    inputs: list[int]
    queries: list[int]
    visible: list[int]


def pack(parts: list[tuple[Tensor, Tensor]], fill: int) -> Tensor:
    """Concatenate variable-length pieces row by row: parts are (tokens (B, W), lens (B,));
    returns (B, max total) with `fill` past each row's total length."""
    B, device = parts[0][0].shape[0], parts[0][0].device
    total = sum(lens for _, lens in parts)
    width = int(total.max())
    out = torch.full((B, width + 1), fill, dtype=torch.long, device=device)  # +1: overflow bin
    offset = torch.zeros(B, dtype=torch.long, device=device)
    for tokens, lens in parts:
        j = torch.arange(tokens.shape[1], device=device)[None, :]
        cols = (offset[:, None] + j).masked_fill(j >= lens[:, None], width)
        out.scatter_(1, cols, tokens)
        offset = offset + lens
    return out[:, :width]


def first_fit(lens: list[int], width: int) -> list[tuple[int, int]]:
    """(row, offset) of each example when examples of lengths `lens` are laid end to end in
    rows of `width`: longest first, each into the first row with room (first-fit
    decreasing), so the rows come out nearly full."""
    room: list[int] = []
    place = [(0, 0)] * len(lens)
    for b in sorted(range(len(lens)), key=lambda b: -lens[b]):
        row = next((r for r, free in enumerate(room) if free >= lens[b]), len(room))
        if row == len(room):
            room.append(width)
        place[b] = (row, width - room[row])
        room[row] -= lens[b]
    return place


@dataclass
class Rows:
    """A training batch as the model takes it: token ids, labels and position ids (R, T),
    and where examples share a row, `segments` (R, T), the example each entry came from
    (−1 at padding), which attention must not cross; else `key_pad` (R, T), True at
    padding."""

    tokens: Tensor
    labels: Tensor
    pos: Tensor
    segments: Tensor | None = None
    key_pad: Tensor | None = None


def padded_rows(lens: Tensor, tokens: Tensor, labels: Tensor, pos: Tensor) -> Rows:
    """One example per row (B, T), padded past lens (B,)."""
    key_pad = torch.arange(tokens.shape[1], device=tokens.device)[None, :] >= lens[:, None]
    return Rows(tokens, labels, pos, key_pad=key_pad)


def packed_rows(lens: Tensor, tokens: Tensor, labels: Tensor, pos: Tensor) -> Rows:
    """The same examples laid end to end in rows as wide as the longest (first_fit), each
    with its own position ids: no row computes more padding than first-fit leaves, and
    the loss, a mean over the same labels, is the padded batch's."""
    B, width, device = len(lens), int(lens.max()), tokens.device
    place = torch.tensor(first_fit(lens.tolist(), width), device=device)  # (B, 2)
    rows, offsets = place[:, 0], place[:, 1]
    j = torch.arange(width, device=device)[None, :]
    real = j < lens[:, None]  # (B, W)
    dest = ((rows * width + offsets)[:, None] + j)[real]  # flat index of each real entry
    R = int(rows.max()) + 1

    def lay(column: Tensor, fill: int) -> Tensor:
        out = torch.full((R * width,), fill, dtype=column.dtype, device=device)
        out[dest] = column[:, :width].expand(B, width)[real]
        return out.view(R, width)

    example = torch.arange(B, device=device)[:, None]
    return Rows(lay(tokens, PAD), lay(labels, IGNORE), lay(pos, 0), lay(example, -1))


Layout = Callable[[Tensor, Tensor, Tensor, Tensor], Rows]
LAYOUTS: dict[str, Layout] = {  # keys: config.BATCHINGS
    "padded": padded_rows,
    "by_length": padded_rows,
    "packed": packed_rows,
}


def repeated(value: int, like: Tensor, count: Tensor | int = 1) -> tuple[Tensor, Tensor]:
    """A piece for `pack`: `count` copies of one token in each row of `like`."""
    B, device = like.shape[0], like.device
    count = torch.as_tensor(count, device=device).expand(B)
    return torch.full((B, max(int(count.max()), 1)), value, device=device), count


def greedy(step: Callable[[Tensor], Tensor], first: Tensor, steps: int) -> Tensor:
    """Greedy decoding: `first` (B, vocab) logits for token 0; `step(tokens (B, 1))`
    returns the logits that follow. Returns (B, steps)."""
    out = [first.argmax(-1)]
    for _ in range(steps - 1):
        out.append(step(out[-1][:, None])[:, -1].argmax(-1))
    return torch.stack(out, dim=1)


def subclasses(cls: type) -> list[type]:
    """Every class below cls, at any depth."""
    return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]


class Arch(nn.Module):
    """Common parts: vocabulary head, position ids (fixed or randomized), config checks.

    Facts the analysis reads:
    - `emits_eos`: `predict` returns the target and one more token, which exact match
      requires to be EOS (the model says where the answer stops);
    - `uses_positions`: it takes the config's positional encoding and position ids;
    - `uses_attention`: it has attention layers, so `score` and `heads` change it;
    - `packs`: its training examples can share a row (`batching: packed`);
    - `unsolvable_without_positions(task)`: why it cannot solve a task without positions."""

    name: str
    emits_eos: ClassVar[bool] = True
    uses_positions: ClassVar[bool] = True
    uses_attention: ClassVar[bool] = True
    packs: ClassVar[bool] = False

    def __init__(self, cfg: Config, task: Task, score: type[Score], encoding: EncodingFactory):
        super().__init__()
        longest = self.seq_len(task, cfg.eval_max_len)
        self.random_range = cfg.max_random_position if cfg.randomized else 0
        self.max_positions = self.random_range or longest
        self.vocab = task.vocab_size
        self.head = nn.Linear(cfg.d_model, self.vocab)
        self.layout = LAYOUTS[cfg.batching]

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        """Raise ConfigError if this architecture cannot run cfg."""
        if cfg.batching == "packed" and not cls.packs:
            packing = ", ".join(a.name for a in subclasses(Arch) if a.packs)
            raise ConfigError(
                f"batching: {cfg.arch} cannot lay several examples in one row; "
                f"'packed' is allowed with arch {packing}; use 'padded' or 'by_length'"
            )

    @classmethod
    def unsolvable_without_positions(cls, task: type[Task]) -> str | None:
        """Why, with no positional encoding, it cannot solve `task` by construction, or None.
        A causal mask or a recurrence orders the tokens by itself."""
        return None

    @staticmethod
    def seq_len(task: Task, n: int) -> int:
        """Longest position sequence an example of length n needs."""
        raise NotImplementedError

    @staticmethod
    def fed_positions(task: Task, n: int) -> tuple[int, ...]:
        """Positions a training example of length n feeds each Transformer of the
        architecture, in the order it builds their encodings: the trained positions that
        the encodings' defaults derive from (`registries.make_config`). Every architecture
        that `uses_positions` declares it."""
        raise NotImplementedError

    def attention_layout(self, task: Task, n: int) -> AttentionLayout | None:
        """Where inputs and target queries of an example of length n sit (None: no
        attention)."""
        raise NotImplementedError

    def positions(self, encoding: EncodingFactory, fed: int) -> PositionalEncoding:
        """The encoding of a Transformer that a training example of the longest length feeds
        `fed` positions as input: ids past those never train, unless randomized, where the
        whole random range does."""
        return encoding(self.max_positions, self.random_range or fed)

    def position_ids(self, lens: Tensor, gen: torch.Generator) -> Tensor:
        """Ids for sequences of lengths lens (B,); `gen` is the position generator, a
        stream of its own so randomized positions never change the data drawn."""
        return position_ids(lens, self.random_range, gen, lens.device)

    def labelled(self, batch: Batch, gen: torch.Generator, layout: Layout) -> tuple[Tensor, Tensor]:
        """Teacher-forced hidden states (R, T, d) and the label each predicts (R, T), IGNORE
        where none, with the examples laid out in rows by `layout`."""
        raise NotImplementedError

    def loss(self, batch: Batch, gen: torch.Generator) -> Tensor:
        """Cross-entropy over every label of the batch, laid out as cfg.batching says."""
        return self.cross_entropy(*self.labelled(batch, gen, self.layout))

    def teacher_forced(self, batch: Batch, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(B, T) whether each label is predicted right given the true tokens before it,
        and (B, T) where there is a label. Every label right is greedy exact match
        (`predict`): greedy decoding follows the target as long as each next token is
        right, so it reproduces the target (and EOS) if and only if every teacher-forced
        prediction is right."""
        hidden, labels = self.labelled(batch, gen, padded_rows)
        return self.head(hidden).argmax(-1) == labels, labels != IGNORE

    def predict(self, batch: Batch, gen: torch.Generator) -> Tensor:
        """Greedy predictions (B, Tout + 1 if emits_eos else Tout); every example in the
        batch has one length."""
        raise NotImplementedError

    def cross_entropy(self, hidden: Tensor, labels: Tensor) -> Tensor:
        logits = self.head(hidden)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
