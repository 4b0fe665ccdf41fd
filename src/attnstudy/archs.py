"""Architectures: how a task's (input, target) pairs become a model's sequences, its
training loss, and its greedy predictions.

- `decoder`: causal LM over `BOS input SEP target EOS`, loss on target and EOS, greedy
  decoding with a key-value cache.
- `encoder`: bidirectional, not autoregressive; the target is read from blank tokens
  appended after `BOS input SEP` (Delétang et al. 2023).
- `encoder-decoder`: Vaswani et al. 2017, encoder over `BOS input`, decoder over
  `SEP target`; cross-attention uses the chosen score.
- `rnn`, `rnn-attention`: recurrent encoder-decoders without and with attention (rnn.py).

The base class `Arch` and the sequence helpers they share are in sequences.py.

Every Transformer sequence starts with a fixed token (BOS, or SEP for the decoder of
encoder-decoder), so a causal model without positions can count from it (Kazemnejad et
al. 2023). The autoregressive architectures predict the target and then EOS, and exact
match requires that EOS (`emits_eos`).

`build_model(cfg, task)` is the composition root: the only code that turns the variant
names of a Config into classes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnstudy.config import Config
from attnstudy.model import KVCache, Transformer
from attnstudy.positions import POSITIONS, PositionalEncoding
from attnstudy.rnn import RNNAttention, RNNSeq2Seq
from attnstudy.scores import SCORES
from attnstudy.sequences import (
    IGNORE,
    Arch,
    AttentionLayout,
    greedy,
    pack,
    padded_rows,
    repeated,
)
from attnstudy.tasks import BLANK, BOS, EOS, PAD, SEP, Batch, Task


class DecoderOnly(Arch):
    """Causal language model over `BOS input SEP target EOS` (Kazemnejad et al. 2023)."""

    name = "decoder"
    packs = True

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        (fed,) = self.fed_positions(task, cfg.train_max_len)
        self.transformer = Transformer(
            cfg, self.vocab, score, self.positions(encoding, fed), causal=True
        )

    @staticmethod
    def fed_positions(task, n):
        return (task.input_len(n) + task.target_len(n) + 2,)  # BOS input SEP target; EOS a label

    @staticmethod
    def seq_len(task, n):
        return task.input_len(n) + task.target_len(n) + 3

    def attention_layout(self, task, n):
        n_in, n_out = task.input_len(n), task.target_len(n)
        queries = [n_in + 1 + j for j in range(n_out)]  # SEP predicts target 0
        return AttentionLayout(
            "self", n_in + n_out + 2, list(range(1, n_in + 1)), queries, [q + 1 for q in queries]
        )

    def labelled(self, batch, gen, layout):
        ignored = torch.full_like(batch.inputs, IGNORE)
        seq = pack(
            [
                repeated(BOS, batch.inputs),
                (batch.inputs, batch.input_lens),
                repeated(SEP, batch.inputs),
                (batch.targets, batch.target_lens),
                repeated(EOS, batch.inputs),
            ],
            PAD,
        )
        labels = pack(
            [
                repeated(IGNORE, batch.inputs),
                (ignored, batch.input_lens),
                repeated(IGNORE, batch.inputs),
                (batch.targets, batch.target_lens),
                repeated(EOS, batch.inputs),
            ],
            IGNORE,
        )
        lens = batch.input_lens + batch.target_lens + 3
        pos = self.position_ids(lens, gen)  # as `predict` draws them, EOS's included
        rows = layout(lens - 1, seq[:, :-1], labels[:, 1:], pos[:, :-1])  # EOS is never fed
        return self.transformer(rows.tokens, rows.pos, segments=rows.segments), rows.labels

    @staticmethod
    def prompt(batch: Batch) -> Tensor:
        """`BOS input SEP` (B, Tin + 2)."""
        x = batch.inputs
        return pack([repeated(BOS, x), (x, batch.input_lens), repeated(SEP, x)], PAD)

    def predict(self, batch, gen):
        prompt = self.prompt(batch)
        steps = batch.targets.shape[1] + 1  # the target, then EOS
        pos = self.position_ids(batch.input_lens + steps + 2, gen)
        cache = KVCache(len(self.transformer.blocks), pos.shape[1])

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
    packs = True

    @classmethod
    def unsolvable_without_positions(cls, task):
        return "its answer blanks are identical, so every one gets the same output"

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        (fed,) = self.fed_positions(task, cfg.train_max_len)
        self.transformer = Transformer(
            cfg, self.vocab, score, self.positions(encoding, fed), causal=False
        )

    @classmethod
    def fed_positions(cls, task, n):
        return (cls.seq_len(task, n),)  # every token, the blanks included

    @staticmethod
    def seq_len(task, n):
        return task.input_len(n) + task.target_len(n) + 2

    def attention_layout(self, task, n):
        n_in, n_out = task.input_len(n), task.target_len(n)
        keys = n_in + n_out + 2
        queries = [n_in + 2 + j for j in range(n_out)]  # blank j reads target j
        return AttentionLayout("self", keys, list(range(1, n_in + 1)), queries, [keys] * n_out)

    def labelled(self, batch, gen, layout):
        """Hidden states of `BOS input SEP BLANK…` and the target under its blanks."""
        seq = pack(
            [
                repeated(BOS, batch.inputs),
                (batch.inputs, batch.input_lens),
                repeated(SEP, batch.inputs),
                repeated(BLANK, batch.inputs, batch.target_lens),
            ],
            PAD,
        )
        ignored = torch.full_like(batch.inputs, IGNORE)
        labels = pack(
            [
                repeated(IGNORE, batch.inputs),
                (ignored, batch.input_lens),
                repeated(IGNORE, batch.inputs),
                (batch.targets, batch.target_lens),
            ],
            IGNORE,
        )
        lens = batch.input_lens + batch.target_lens + 2
        rows = layout(lens, seq, labels, self.position_ids(lens, gen))
        hidden = self.transformer(rows.tokens, rows.pos, rows.key_pad, segments=rows.segments)
        return hidden, rows.labels

    def predict(self, batch, gen):
        hidden, _ = self.labelled(batch, gen, padded_rows)
        steps = batch.targets.shape[1]
        return self.head(hidden[:, -steps:]).argmax(-1)


class EncoderDecoder(Arch):
    """Vaswani et al. 2017: encoder over `BOS input`, causal decoder over `SEP target`
    with cross-attention."""

    name = "encoder-decoder"

    @classmethod
    def unsolvable_without_positions(cls, task):
        return None if task.order_free else "its decoder sees the source as an unordered bag"

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        fed = self.fed_positions(task, cfg.train_max_len)
        # both encodings before both Transformers: the seeded draws keep their order
        source, target = (self.positions(encoding, side) for side in fed)
        self.encoder = Transformer(cfg, self.vocab, score, source, causal=False)
        self.decoder = Transformer(cfg, self.vocab, score, target, causal=True, cross=True)

    @staticmethod
    def fed_positions(task, n):
        """The encoder's, then the decoder's: their trained lengths differ where the task's
        input and target lengths do."""
        return task.input_len(n) + 1, task.target_len(n) + 1  # BOS input; SEP target (EOS: label)

    @staticmethod
    def seq_len(task, n):
        return max(task.input_len(n), task.target_len(n)) + 1

    def attention_layout(self, task, n):
        n_in, n_out = task.input_len(n), task.target_len(n)
        inputs = list(range(1, n_in + 1))  # after BOS in the encoder memory
        return AttentionLayout("cross", n_in + 1, inputs, list(range(n_out)), [n_in + 1] * n_out)

    def _encode(self, batch: Batch, gen) -> tuple[Tensor, Tensor]:
        """Memory (B, S, d) of `BOS input` and its padding mask (B, S)."""
        src = pack([repeated(BOS, batch.inputs), (batch.inputs, batch.input_lens)], PAD)
        lens = batch.input_lens + 1
        src_pad = torch.arange(src.shape[1], device=src.device)[None, :] >= lens[:, None]
        return self.encoder(src, self.position_ids(lens, gen), key_pad=src_pad), src_pad

    def labelled(self, batch, gen, layout):
        memory, src_pad = self._encode(batch, gen)
        tgt_in = pack([repeated(SEP, batch.inputs), (batch.targets, batch.target_lens)], PAD)
        labels = pack([(batch.targets, batch.target_lens), repeated(EOS, batch.inputs)], IGNORE)
        pos = self.position_ids(batch.target_lens + 1, gen)
        return self.decoder(tgt_in, pos, memory=memory, memory_pad=src_pad), labels

    def predict(self, batch, gen):
        B, device = len(batch.inputs), batch.inputs.device
        memory, src_pad = self._encode(batch, gen)
        steps = batch.targets.shape[1] + 1  # the target, then EOS
        pos = self.position_ids(torch.full((B,), steps, device=device), gen)
        cache = KVCache(len(self.decoder.blocks), pos.shape[1])

        def step(tokens):
            hidden = self.decoder(tokens, pos, memory=memory, memory_pad=src_pad, cache=cache)
            return self.head(hidden)

        return greedy(step, step(torch.full((B, 1), SEP, device=device))[:, -1], steps)


ARCHS: dict[str, type[Arch]] = {
    a.name: a for a in (DecoderOnly, EncoderOnly, EncoderDecoder, RNNSeq2Seq, RNNAttention)
}


def build_model(cfg: Config, task: Task) -> Arch:
    """The composition root: variant names → score class, encoding, architecture."""
    score = SCORES[cfg.score]

    def encoding(max_positions: int, trained_positions: int) -> PositionalEncoding:
        return POSITIONS[cfg.position](cfg, max_positions, trained_positions)

    return ARCHS[cfg.arch](cfg, task, score, encoding)


def initial_model(cfg: Config, task: Task, device: torch.device) -> Arch:
    """cfg's model as initialised from its seed, before any training step."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg, task).to(device)
