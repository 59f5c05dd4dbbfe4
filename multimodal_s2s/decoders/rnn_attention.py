"""Recurrent text decoders: with additive attention (Bahdanau et al. 2014) or with one fixed
context vector (Cho et al. 2014; Sutskever et al. 2014).

Both implement the protocol of ``decoders.base``. The initial state is
``tanh(Linear(encoded.context_vector()))``: the final state of a recurrent encoder, else the
masked mean of the memory. An LSTM's cell state starts at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from multimodal_s2s.decoders.base import StepOutput
from multimodal_s2s.decoders.text_transformer import (
    DEFAULT_DROPOUT,
    check_encoded,
    check_tokens,
    rows_per_example,
)
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.attention import attention_bias
from multimodal_s2s.layers.positional import check_token_range
from multimodal_s2s.layers.recurrent import RecurrentSteps, run_recurrent
from multimodal_s2s.registry import register_decoder
from multimodal_s2s.types import PAD_ID, Emits, EncoderInfo, SequenceOutput

RNN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
ATTENTION_KINDS = ("additive", "none")


class AdditiveAttention(nn.Module):
    """Energies e_j = v^T tanh(W s + U h_j) over memory rows h_j; U h_j is computed once per input."""

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int):
        super().__init__()
        self.query_projection = nn.Linear(query_dim, attention_dim, bias=False)  # W
        self.memory_projection = nn.Linear(memory_dim, attention_dim)  # U (and the bias)
        self.energy = nn.Linear(attention_dim, 1, bias=False)  # v

    def project_memory(self, memory: Tensor) -> Tensor:
        """memory (B, T, D) -> keys U h_j (B, T, A)."""
        return self.memory_projection(memory)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        """query s (B, Q), keys (B, T, A), memory (B, T, D), bias (B, T) (-inf on padding)
        -> context (B, D) and weights (B, T) (0 on padded rows)."""
        energies = self.energy(torch.tanh(keys + self.query_projection(query).unsqueeze(1))).squeeze(-1)  # (B, T)
        weights = (energies + bias).softmax(dim=-1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


@dataclass
class RNNCache:
    """Decoder state between steps.

    Attributes:
        hidden: (layers, B, H) the RNN hidden state s.
        cell: (layers, B, H) an LSTM's cell state, else None.
        context: (B, C) the fixed context vector (attention="none"), else None.
        memory: (B, T, D) the rows attended over (attention="additive"), else None.
        keys: (B, T, A) U h_j, precomputed (attention="additive"), else None.
        bias: (B, T) additive memory mask, -inf on padded rows (attention="additive"), else None.
    """

    hidden: Tensor
    cell: Tensor | None = None
    context: Tensor | None = None
    memory: Tensor | None = None
    keys: Tensor | None = None
    bias: Tensor | None = None

    @property
    def rnn_state(self) -> Tensor | tuple[Tensor, Tensor]:
        """The state as nn.LSTM / nn.GRU take it."""
        return self.hidden if self.cell is None else (self.hidden, self.cell)

    def reorder(self, index: Tensor) -> RNNCache:
        """A new cache with batch rows ``index`` (B',) long; every field is reordered, so any index is right."""

        def rows(tensor: Tensor | None, dim: int = 0) -> Tensor | None:
            return None if tensor is None else tensor.index_select(dim, index)

        return RNNCache(
            rows(self.hidden, 1),
            rows(self.cell, 1),
            rows(self.context),
            rows(self.memory),
            rows(self.keys),
            rows(self.bias),
        )


class RNNDecoder(nn.Module):
    """LSTM/GRU decoder. The RNN reads [embedding(y_{t-1}); c_t]; logits come from a projection of
    [s_t; c_t; embedding(y_{t-1})]. c_t is the additive attention context computed from s_{t-1}
    (attention="additive") or the fixed context vector (attention="none")."""

    def __init__(
        self,
        encoder_info: EncoderInfo,
        vocab_size: int,
        cell: str = "lstm",
        embed_dim: int = 256,
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = DEFAULT_DROPOUT,
        attention: str = "additive",
    ):
        super().__init__()
        if cell not in RNN_CELLS:
            raise ValueError(f"unknown RNN cell {cell!r}; valid cells: {', '.join(RNN_CELLS)}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention {attention!r}; valid: {', '.join(ATTENTION_KINDS)}")
        if encoder_info.out_dim is None or Emits.SEQUENCE not in encoder_info.emits:
            raise ValueError(f"the RNN decoder needs an encoder that emits a sequence, got {encoder_info}")
        self.vocab_size = vocab_size
        self.memory_dim = encoder_info.out_dim
        self.context_dim = encoder_info.state_dim if encoder_info.state_dim is not None else encoder_info.out_dim
        self.is_lstm = cell == "lstm"
        self.num_layers, self.hidden_size = num_layers, hidden_size
        step_context_dim = self.memory_dim if attention == "additive" else self.context_dim
        self.attention = (
            AdditiveAttention(hidden_size, self.memory_dim, hidden_size) if attention == "additive" else None
        )
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.init_state = nn.Linear(self.context_dim, num_layers * hidden_size)
        self.rnn = RNN_CELLS[cell](
            embed_dim + step_context_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size + step_context_dim + embed_dim, vocab_size)

    def start_cache(self, encoded: SequenceOutput) -> RNNCache:
        """The initial state from the context vector; keys U h_j when attending."""
        check_encoded(encoded, self.memory_dim)
        context = encoded.context_vector()  # (B, C)
        if context.dim() != 2 or context.shape[-1] != self.context_dim:
            raise InputError(f"context vector must be (B, {self.context_dim}), got shape {tuple(context.shape)}")
        batch = context.shape[0]
        hidden = torch.tanh(self.init_state(context)).view(batch, self.num_layers, self.hidden_size)
        hidden = hidden.transpose(0, 1).contiguous()  # (layers, B, H)
        cell = torch.zeros_like(hidden) if self.is_lstm else None
        if self.attention is None:
            return RNNCache(hidden, cell, context=context)
        memory = encoded.memory
        bias = attention_bias(encoded.mask, memory.dtype)
        return RNNCache(hidden, cell, memory=memory, keys=self.attention.project_memory(memory), bias=bias)

    def _attend_and_run(self, embedded: Tensor, cache: RNNCache) -> tuple[Tensor, Tensor, Tensor, RNNCache]:
        """Additive attention, one position at a time: embedded (B, L, E) ->
        states s_t (B, L, H), contexts c_t (B, L, D), weights (B, L, T), the cache after them."""
        run_step = RecurrentSteps(self.rnn, embedded)
        state, states, contexts, weights = cache.rnn_state, [], [], []
        for t in range(embedded.shape[1]):
            top_hidden = (state[0] if self.is_lstm else state)[-1]  # s_{t-1} (B, H)
            context, attention = self.attention(top_hidden, cache.keys, cache.memory, cache.bias)
            output, state = run_step(t, context, state)
            states.append(output)
            contexts.append(context)
            weights.append(attention)
        hidden, cell = state if self.is_lstm else (state, None)
        after = RNNCache(hidden, cell, memory=cache.memory, keys=cache.keys, bias=cache.bias)
        return torch.stack(states, dim=1), torch.stack(contexts, dim=1), torch.stack(weights, dim=1), after

    def _run_fixed_context(self, embedded: Tensor, cache: RNNCache) -> tuple[Tensor, Tensor, RNNCache]:
        """The whole sequence at once: embedded (B, L, E) -> states (B, L, H), contexts (B, L, C), cache."""
        contexts = cache.context.unsqueeze(1).expand(-1, embedded.shape[1], -1)  # (B, L, C)
        states, state = run_recurrent(self.rnn, torch.cat([embedded, contexts], dim=-1), cache.rnn_state)
        hidden, cell = state if self.is_lstm else (state, None)
        return states, contexts, RNNCache(hidden, cell, context=cache.context)

    def _decode(self, tokens: Tensor, cache: RNNCache) -> tuple[Tensor, RNNCache, Tensor | None]:
        """tokens (B, L) -> logits (B, L, V), the cache after them, attention weights (B, L, T) or None."""
        embedded = self.dropout(self.embedding(tokens))  # (B, L, E)
        if self.attention is None:
            states, contexts, cache = self._run_fixed_context(embedded, cache)
            weights = None
        else:
            states, contexts, weights, cache = self._attend_and_run(embedded, cache)
        logits = self.output(self.dropout(torch.cat([states, contexts, embedded], dim=-1)))
        return logits, cache, weights

    def forward(self, tokens: Tensor, encoded: SequenceOutput) -> Tensor:
        """Teacher forcing: tokens (B, L) -> logits (B, L, V)."""
        check_tokens(tokens, encoded.memory.shape[0])
        check_token_range(tokens, self.vocab_size)
        return self._decode(tokens, self.start_cache(encoded))[0]

    def step(
        self, tokens: Tensor, encoded: SequenceOutput, cache: RNNCache | None = None, return_attention: bool = False
    ) -> StepOutput:
        """tokens (N, L_new) after the cached positions -> logits (N, L_new, V) and a new cache.

        ``cache=None`` starts from the initial state (``encoded`` is read only then); N may be a
        multiple g of its B examples (``rows_per_example``): each row then gets its example's state.
        ``attention``: (B, L_new, T) when asked and attention="additive", else None.
        """
        if cache is None:
            group = rows_per_example(tokens, encoded.memory.shape[0])
            check_token_range(tokens, self.vocab_size)
            cache = self.start_cache(encoded.repeat_interleave(group) if group > 1 else encoded)
        else:
            check_tokens(tokens, cache.hidden.shape[1])
        logits, cache, weights = self._decode(tokens, cache)
        return StepOutput(logits, cache, weights if return_attention else None)


@register_decoder("rnn_attention", requires={Emits.SEQUENCE}, output="text", attends=True)
def rnn_attention(
    encoder_info: EncoderInfo,
    *,
    vocab_size: int,
    cell: str = "lstm",
    embed_dim: int = 256,
    hidden_size: int = 512,
    num_layers: int = 1,
    dropout: float = DEFAULT_DROPOUT,
) -> RNNDecoder:
    """LSTM/GRU decoder with additive attention over the memory (Bahdanau et al. 2014)."""
    return RNNDecoder(encoder_info, vocab_size, cell, embed_dim, hidden_size, num_layers, dropout, "additive")


@register_decoder("rnn", requires={Emits.SEQUENCE}, output="text")
def rnn(
    encoder_info: EncoderInfo,
    *,
    vocab_size: int,
    cell: str = "lstm",
    embed_dim: int = 256,
    hidden_size: int = 512,
    num_layers: int = 1,
    dropout: float = DEFAULT_DROPOUT,
) -> RNNDecoder:
    """LSTM/GRU decoder fed one fixed context vector at every step (Cho et al. 2014)."""
    return RNNDecoder(encoder_info, vocab_size, cell, embed_dim, hidden_size, num_layers, dropout, "none")
