"""The lecture notes' own systems: recurrent encoder-decoders (claims C1 and C2).

- `rnn`: Sutskever et al. 2014, Cho et al. 2014. A GRU encoder reads the input; its final
  hidden state, the single context vector, initialises the GRU decoder, which sees nothing
  else of the input.
- `rnn-attention`: Luong et al. 2015 global attention. At every decoder step the decoder
  state s_t queries all encoder states h_1..h_n (keys = values) with the study's score
  function and `heads` heads; the context c_t = Σ α_i h_i and s_t together give the
  attentional hidden state tanh(W_c [c_t; s_t]) that predicts the next token. Without
  Luong's input feeding the decoder states do not depend on attention, so the
  teacher-forced decoder runs in one pass and attends once, over all its steps.

Order comes from recurrence, so these architectures take no positional encoding and no
start token. Like the other autoregressive architectures they predict the target and
then EOS.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnstudy.config import Config, ConfigError
from attnstudy.model import LayerCache, MultiHeadAttention, mask_bias
from attnstudy.position_context import NO_POSITIONS
from attnstudy.sequences import IGNORE, Arch, AttentionLayout, greedy, pack, repeated
from attnstudy.tasks import EOS, PAD, SEP, Batch


def gru(cfg: Config) -> nn.GRU:
    """d_model → d_model, n_layers deep, dropout between layers."""
    dropout = cfg.dropout if cfg.n_layers > 1 else 0.0
    return nn.GRU(cfg.d_model, cfg.d_model, cfg.n_layers, batch_first=True, dropout=dropout)


class GRUEncoder(nn.Module):
    """Embedding → GRU over each example's real tokens only (packed), so padding changes
    neither the encoder states nor the final state."""

    def __init__(self, cfg: Config, vocab: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, cfg.d_model)
        self.gru = gru(cfg)

    def forward(self, tokens: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """tokens (B, S), lens (B,) → states (B, S, d), zero at padding, and the final
        state (n_layers, B, d) after each example's last real token."""
        x = pack_padded_sequence(
            self.embedding(tokens), lens.cpu(), batch_first=True, enforce_sorted=False
        )
        states, final = self.gru(x)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=tokens.shape[1])
        return states, final


class RNNSeq2Seq(Arch):
    """GRU encoder-decoder whose decoder sees only the encoder's final hidden state."""

    name = "rnn"
    uses_positions = False  # order comes from recurrence
    uses_attention = False

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        self.encoder = GRUEncoder(cfg, self.vocab)
        self.embedding = nn.Embedding(self.vocab, cfg.d_model)
        self.decoder = gru(cfg)

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        if cfg.position != "none":
            raise ConfigError(
                f"position: RNN architectures take order from recurrence; allowed: none; "
                f"got {cfg.position!r} with arch={cfg.arch}"
            )
        if cfg.randomized:
            raise ConfigError(f"randomized: must be false for RNN architectures (arch={cfg.arch})")

    @staticmethod
    def seq_len(task, n):  # no position ids are used; the longest encoder or decoder run
        return max(task.input_len(n), task.target_len(n) + 1)

    def attention_layout(self, task, n):
        return None

    def encode(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Encoder states (B, S, d), their padding mask as a bias (B, 1, 1, S), and the
        final state (n_layers, B, d)."""
        S, device = batch.inputs.shape[1], batch.inputs.device
        memory, final = self.encoder(batch.inputs, batch.input_lens)
        src_pad = torch.arange(S, device=device)[None, :] >= batch.input_lens[:, None]
        return memory, mask_bias(0, 1, S, False, src_pad, device), final

    def decode(
        self, tokens: Tensor, state: Tensor, memory: Tensor, memory_bias: Tensor, cache=None
    ) -> tuple[Tensor, Tensor]:
        """Decoder steps for tokens (B, T) from state (n_layers, B, d): returns the readout
        (B, T, d) that predicts each next token, and the new state."""
        s, state = self.decoder(self.embedding(tokens), state)  # (B, T, d)
        return self.readout(s, memory, memory_bias, cache), state

    def readout(
        self, s: Tensor, memory: Tensor, memory_bias: Tensor, cache: LayerCache | None
    ) -> Tensor:
        """The vector that predicts the next token from decoder states s (B, T, d): here s
        itself; the encoder states `memory` (B, S, d) go unused."""
        return s

    def readouts(self, batch: Batch) -> Tensor:
        """Readouts (B, Tout + 1, d) for the decoder input `SEP target`, each predicting
        the next token (target, then EOS)."""
        memory, memory_bias, state = self.encode(batch)
        tgt_in = pack([repeated(SEP, batch.inputs), (batch.targets, batch.target_lens)], PAD)
        return self.decode(tgt_in, state, memory, memory_bias)[0]

    def labelled(self, batch, gen, layout):
        labels = pack([(batch.targets, batch.target_lens), repeated(EOS, batch.inputs)], IGNORE)
        return self.readouts(batch), labels

    def predict(self, batch, gen):
        B, device = len(batch.inputs), batch.inputs.device
        memory, memory_bias, state = self.encode(batch)
        cache = LayerCache(0)  # cross-attention only: the encoder states' keys and values

        def step(tokens):
            nonlocal state
            hidden, state = self.decode(tokens, state, memory, memory_bias, cache)
            return self.head(hidden)

        first = step(torch.full((B, 1), SEP, device=device))[:, -1]
        return greedy(step, first, batch.targets.shape[1] + 1)  # the target, then EOS


class RNNAttention(RNNSeq2Seq):
    """The same, plus Luong et al. 2015 global attention over every encoder state."""

    name = "rnn-attention"
    uses_attention = True

    def __init__(self, cfg, task, score, encoding):
        super().__init__(cfg, task, score, encoding)
        self.attention = MultiHeadAttention(cfg, score)
        self.W_c = nn.Linear(2 * cfg.d_model, cfg.d_model, bias=False)

    def attention_layout(self, task, n):
        n_in, n_out = task.input_len(n), task.target_len(n)
        inputs = list(range(n_in))  # the encoder states
        return AttentionLayout("cross", n_in, inputs, list(range(n_out)), [n_in] * n_out)

    def readout(self, s, memory, memory_bias, cache):
        """h̃_t = tanh(W_c [c_t; s_t]), c_t = attention(query s_t, keys = values = memory)."""
        c = self.attention(s, memory, memory_bias, NO_POSITIONS, cache, self_attention=False)
        return torch.tanh(self.W_c(torch.cat([c, s], dim=-1)))  # (B, T, d)
