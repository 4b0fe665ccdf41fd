"""Architectures: how a task's (input, target) pairs become a model's sequences, its
training loss, and its greedy predictions.

- `decoder`: causal LM over `BOS input SEP target EOS`, loss on target and EOS, greedy
  decoding with a key-value cache.
- `encoder`: bidirectional, not autoregressive; the target is read from blank tokens
  appended after `BOS input SEP` (Delétang et al. 2023).
- `encoder-decoder`: Vaswani et al. 2017, encoder over `BOS input`, decoder over
  `SEP target`; cross-attention uses the chosen score.
- `rnn`, `rnn-attention`: recurrent encoder-decoders without and with attention (rnn.py).

Every Transformer sequence starts with a fixed token (BOS, or SEP for the decoder of
encoder-decoder), so a causal model without positions can count from it (Kazemnejad et
al. 2023). The autoregressive architectures predict the target and then EOS, and exact
match requires that EOS (`emits_eos`).

`build_model(cfg, task)` is the composition root: the only code that turns the variant
names of a Config into classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnstudy.config import Config
from attnstudy.model import KVCache, Transformer
from attnstudy.positions import POSITIONS, PositionalEncoding, position_ids
from attnstudy.scores import SCORES, Score
from attnstudy.tasks import BLANK, BOS, EOS, PAD, SEP, Batch, Task

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

    `emits_eos`: `predict` returns the target and one more token, which exact match
    requires to be EOS (the model says where the answer stops)."""

    name: str
    emits_eos: ClassVar[bool] = True

    def __init__(self, cfg: Config, task: Task, score: type[Score], encoding: EncodingFactory):
        super().__init__()
        longest = self.seq_len(task, cfg.resolved_eval_max_len)
        self.random_range = (cfg.max_random_position or 4 * longest) if cfg.randomized else 0
        self.max_positions = self.random_range or longest
        self.trained_positions = self.random_range or self.seq_len(task, cfg.train_max_len)
        self.vocab = task.vocab_size
        self.head = nn.Linear(cfg.d_model, self.vocab)

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        """Raise ConfigError if this architecture cannot run cfg."""

    @staticmethod
    def seq_len(task: Task, n: int) -> int:
        """Longest position sequence an example of length n needs."""
        raise NotImplementedError

    def attention_layout(self, task: Task, n: int) -> AttentionLayout | None:
        """Where inputs and target queries of an example of length n sit (None: no
        attention)."""
        raise NotImplementedError

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


class DecoderOnly(Arch):
    """Causal language model over `BOS input SEP target EOS` (Kazemnejad et al. 2023)."""

    name = "decoder"

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        positions = encoding(self.max_positions, self.trained_positions)
        self.transformer = Transformer(cfg, self.vocab, score, positions, causal=True)

    @staticmethod
    def seq_len(task, n):
        return task.input_len(n) + task.target_len(n) + 3

    def attention_layout(self, task, n):
        n_in, n_out = task.input_len(n), task.target_len(n)
        queries = [n_in + 1 + j for j in range(n_out)]  # SEP predicts target 0
        return AttentionLayout(
            "self", n_in + n_out + 2, list(range(1, n_in + 1)), queries, [q + 1 for q in queries]
        )

    def loss(self, batch, gen):
        ignored = torch.full_like(batch.inputs, IGNORE)
        seq = pack(
            [
                constant(BOS, batch.inputs),
                (batch.inputs, batch.input_lens),
                constant(SEP, batch.inputs),
                (batch.targets, batch.target_lens),
                constant(EOS, batch.inputs),
            ],
            PAD,
        )
        labels = pack(
            [
                constant(IGNORE, batch.inputs),
                (ignored, batch.input_lens),
                constant(IGNORE, batch.inputs),
                (batch.targets, batch.target_lens),
                constant(EOS, batch.inputs),
            ],
            IGNORE,
        )
        pos = self.position_ids(batch.input_lens + batch.target_lens + 3, gen)
        return self.cross_entropy(self.transformer(seq[:, :-1], pos), labels[:, 1:])

    @staticmethod
    def prompt(batch: Batch) -> Tensor:
        """`BOS input SEP` (B, Tin + 2)."""
        x = batch.inputs
        return pack([constant(BOS, x), (x, batch.input_lens), constant(SEP, x)], PAD)

    def predict(self, batch, gen):
        prompt = self.prompt(batch)
        steps = batch.targets.shape[1] + 1  # the target, then EOS
        pos = self.position_ids(batch.input_lens + steps + 2, gen)
        cache = KVCache(len(self.transformer.blocks))

        def step(tokens):
            return self.head(self.transformer(tokens, pos, cache=cache))

        return greedy(step, step(prompt)[:, -1], steps)


class EncoderOnly(Arch):
    """Bidirectional encoder; the answer is read from blanks after `BOS input SEP`.

    It reads exactly as many blanks as the target has tokens (Delétang et al. 2023), so
    it is told where the answer stops: its exact match is over the target positions
    only, with no EOS to get right."""

    name = "encoder"
    emits_eos = False

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        positions = encoding(self.max_positions, self.trained_positions)
        self.transformer = Transformer(cfg, self.vocab, score, positions, causal=False)

    @staticmethod
    def seq_len(task, n):
        return task.input_len(n) + task.target_len(n) + 2

    def attention_layout(self, task, n):
        n_in, n_out = task.input_len(n), task.target_len(n)
        keys = n_in + n_out + 2
        queries = [n_in + 2 + j for j in range(n_out)]  # blank j reads target j
        return AttentionLayout("self", keys, list(range(1, n_in + 1)), queries, [keys] * n_out)

    def _hidden(self, batch: Batch, gen) -> Tensor:
        """Hidden states of `BOS input SEP BLANK…`, returned packed the same way."""
        seq = pack(
            [
                constant(BOS, batch.inputs),
                (batch.inputs, batch.input_lens),
                constant(SEP, batch.inputs),
                constant(BLANK, batch.inputs, batch.target_lens),
            ],
            PAD,
        )
        lens = batch.input_lens + batch.target_lens + 2
        key_pad = torch.arange(seq.shape[1], device=seq.device)[None, :] >= lens[:, None]
        return self.transformer(seq, self.position_ids(lens, gen), key_pad=key_pad)

    def loss(self, batch, gen):
        ignored = torch.full_like(batch.inputs, IGNORE)
        labels = pack(
            [
                constant(IGNORE, batch.inputs),
                (ignored, batch.input_lens),
                constant(IGNORE, batch.inputs),
                (batch.targets, batch.target_lens),
            ],
            IGNORE,
        )
        return self.cross_entropy(self._hidden(batch, gen), labels)

    def predict(self, batch, gen):
        hidden = self._hidden(batch, gen)
        steps = batch.targets.shape[1]
        return self.head(hidden[:, -steps:]).argmax(-1)


class EncoderDecoder(Arch):
    """Vaswani et al. 2017: encoder over `BOS input`, causal decoder over `SEP target`
    with cross-attention."""

    name = "encoder-decoder"

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        ids = (self.max_positions, self.trained_positions)
        self.encoder = Transformer(cfg, self.vocab, score, encoding(*ids), causal=False)
        self.decoder = Transformer(cfg, self.vocab, score, encoding(*ids), causal=True, cross=True)

    @staticmethod
    def seq_len(task, n):
        return max(task.input_len(n), task.target_len(n)) + 1

    def attention_layout(self, task, n):
        n_in, n_out = task.input_len(n), task.target_len(n)
        inputs = list(range(1, n_in + 1))  # after BOS in the encoder memory
        return AttentionLayout("cross", n_in + 1, inputs, list(range(n_out)), [n_in + 1] * n_out)

    def _encode(self, batch: Batch, gen) -> tuple[Tensor, Tensor]:
        """Memory (B, S, d) of `BOS input` and its padding mask (B, S)."""
        src = pack([constant(BOS, batch.inputs), (batch.inputs, batch.input_lens)], PAD)
        lens = batch.input_lens + 1
        src_pad = torch.arange(src.shape[1], device=src.device)[None, :] >= lens[:, None]
        return self.encoder(src, self.position_ids(lens, gen), key_pad=src_pad), src_pad

    def loss(self, batch, gen):
        memory, src_pad = self._encode(batch, gen)
        tgt_in = pack([constant(SEP, batch.inputs), (batch.targets, batch.target_lens)], PAD)
        labels = pack([(batch.targets, batch.target_lens), constant(EOS, batch.inputs)], IGNORE)
        pos = self.position_ids(batch.target_lens + 1, gen)
        hidden = self.decoder(tgt_in, pos, memory=memory, memory_pad=src_pad)
        return self.cross_entropy(hidden, labels)

    def predict(self, batch, gen):
        B, device = len(batch.inputs), batch.inputs.device
        memory, src_pad = self._encode(batch, gen)
        steps = batch.targets.shape[1] + 1  # the target, then EOS
        pos = self.position_ids(torch.full((B,), steps, device=device), gen)
        cache = KVCache(len(self.decoder.blocks))

        def step(tokens):
            hidden = self.decoder(tokens, pos, memory=memory, memory_pad=src_pad, cache=cache)
            return self.head(hidden)

        return greedy(step, step(torch.full((B, 1), SEP, device=device))[:, -1], steps)


ARCHS: dict[str, type[Arch]] = {a.name: a for a in (DecoderOnly, EncoderOnly, EncoderDecoder)}

import attnstudy.rnn  # noqa: E402, F401  (subclasses Arch; registers rnn, rnn-attention)


def build_model(cfg: Config, task: Task) -> Arch:
    """The composition root: variant names → score class, encoding, architecture."""
    score = SCORES[cfg.score]

    def encoding(max_positions: int, trained_positions: int) -> PositionalEncoding:
        return POSITIONS[cfg.position](cfg, max_positions, trained_positions)

    return ARCHS[cfg.arch](cfg, task, score, encoding)
