"""What every architecture shares: the `Arch` base class (vocabulary head, position ids,
config checks, and the facts the analysis reads), and the helpers that lay out a task's
variable-length pieces as sequences (`pack`, `constant`) and decode greedily (`greedy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnstudy.config import Config
from attnstudy.positions import PositionalEncoding, position_ids
from attnstudy.scores import Score
from attnstudy.tasks import Batch, Task

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


def constant(value: int, like: Tensor, count: Tensor | int = 1) -> tuple[Tensor, Tensor]:
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


class Arch(nn.Module):
    """Common parts: vocabulary head, position ids (fixed or randomized), config checks.

    Facts the analysis reads:
    - `emits_eos`: `predict` returns the target and one more token, which exact match
      requires to be EOS (the model says where the answer stops);
    - `uses_positions`: it takes the config's positional encoding and position ids;
    - `uses_attention`: it has attention layers, so `score` and `heads` change it;
    - `unsolvable_without_positions(task)`: why it cannot solve a task without positions."""

    name: str
    emits_eos: ClassVar[bool] = True
    uses_positions: ClassVar[bool] = True
    uses_attention: ClassVar[bool] = True

    def __init__(self, cfg: Config, task: Task, score: type[Score], encoding: EncodingFactory):
        super().__init__()
        longest = self.seq_len(task, cfg.resolved_eval_max_len)
        self.random_range = (cfg.max_random_position or 4 * longest) if cfg.randomized else 0
        self.max_positions = self.random_range or longest
        self.vocab = task.vocab_size
        self.head = nn.Linear(cfg.d_model, self.vocab)

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        """Raise ConfigError if this architecture cannot run cfg."""

    @classmethod
    def unsolvable_without_positions(cls, task: type[Task]) -> str | None:
        """Why, with no positional encoding, it cannot solve `task` by construction, or None.
        A causal mask or a recurrence orders the tokens by itself."""
        return None

    @staticmethod
    def seq_len(task: Task, n: int) -> int:
        """Longest position sequence an example of length n needs."""
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

    def loss(self, batch: Batch, gen: torch.Generator) -> Tensor:
        raise NotImplementedError

    def predict(self, batch: Batch, gen: torch.Generator) -> Tensor:
        """Greedy predictions (B, Tout + 1 if emits_eos else Tout); every example in the
        batch has one length."""
        raise NotImplementedError

    def cross_entropy(self, hidden: Tensor, labels: Tensor) -> Tensor:
        logits = self.head(hidden)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
