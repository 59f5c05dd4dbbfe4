"""Recurrent text encoder: token ids (B, L) + lengths (B,) -> memory, mask and a final state.

Embedding + LSTM or GRU over packed sequences, so padding never enters the recurrence.
``reverse_source`` feeds each sentence's tokens in reverse order (Sutskever et al. 2014),
which shortens the path between the first source and first target words; the memory rows
are put back in source order afterwards, so row i is always token i (attention maps read
left to right either way).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from multimodal_s2s.encoders.base import Encoder, check_token_ids
from multimodal_s2s.layers.masks import lengths_to_mask
from multimodal_s2s.layers.recurrent import run_recurrent
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import PAD_ID, Emits, EncoderInfo, Modality, SequenceOutput

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
DEFAULT_DROPOUT = 0.1


def reverse_valid_tokens(tokens: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the first lengths[b] entries of each row along dim 1, leaving padding in place.

    tokens (B, L, ...) , lengths (B,) -> same shape. Applying it twice restores the input.
    """
    positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)  # (1, L)
    lengths = lengths.to(tokens.device).unsqueeze(1)  # (B, 1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, L)
    index = index.view(*index.shape, *([1] * (tokens.dim() - 2))).expand_as(tokens)
    return tokens.gather(1, index)


class TextRNNEncoder(Encoder):
    """token ids (B, L) + lengths (B,) -> SequenceOutput(memory (B, L, H*dirs), mask (B, L), final_state (B, H*dirs)).

    Args:
        vocab_size: number of token ids (PAD_ID embeds to zeros).
        embed_dim: embedding width.
        hidden_size: RNN width per direction.
        num_layers: stacked RNN layers.
        cell: ``"lstm"`` or ``"gru"``.
        bidirectional: read both ways; memory rows and final state concatenate the directions.
        dropout: on the embeddings and between RNN layers.
        reverse_source: read each sentence backwards (Sutskever et al. 2014).

    ``final_state`` is the last layer's final hidden state, forward then backward direction.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 256,
        hidden_size: int = 256,
        num_layers: int = 2,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = DEFAULT_DROPOUT,
        reverse_source: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.vocab_size = vocab_size
        self.reverse_source = reverse_source
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        out_dim = hidden_size * self.directions
        self.info = EncoderInfo(
            modality=Modality.TEXT,
            emits=frozenset({Emits.SEQUENCE, Emits.FINAL_STATE}),
            out_dim=out_dim,
            state_dim=out_dim,
        )

    def encode_sequence(self, tokens: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """tokens (B, L) long, lengths (B,) (None = all L) -> SequenceOutput."""
        batch, max_len = tokens.shape
        if lengths is None:
            lengths = torch.full((batch,), max_len, dtype=torch.long)
        check_token_ids(tokens, lengths, self.vocab_size)
        if self.reverse_source:
            tokens = reverse_valid_tokens(tokens, lengths)
        embedded = self.dropout(self.embedding(tokens))  # (B, L, E)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, hidden = run_recurrent(self.rnn, packed)
        memory, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=max_len)  # (B, L, H*dirs)
        if self.reverse_source:
            memory = reverse_valid_tokens(memory, lengths)
        return SequenceOutput(
            memory=memory,
            mask=lengths_to_mask(lengths.to(tokens.device), max_len),
            final_state=self._last_layer_state(hidden),
        )

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        return self.encode_sequence(tokens, lengths)

    def _last_layer_state(self, hidden: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        """h_n (layers*dirs, B, H) (LSTM: with c_n) -> the last layer's directions concatenated (B, H*dirs)."""
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden
        last = h_n.view(self.num_layers, self.directions, *h_n.shape[1:])[-1]  # (dirs, B, H)
        return last.permute(1, 0, 2).flatten(1)


_SIZES = {
    "tiny": {"embed_dim": 32, "hidden_size": 32, "num_layers": 1},
    "small": {"embed_dim": 256, "hidden_size": 256, "num_layers": 2},
    "base": {"embed_dim": 512, "hidden_size": 512, "num_layers": 2},
}
_TEXT_RNN = {"modality": Modality.TEXT, "emits": {Emits.SEQUENCE, Emits.FINAL_STATE}}


def _build(cell: str, size: str, vocab_size: int, overrides: dict) -> TextRNNEncoder:
    return TextRNNEncoder(vocab_size, **{**_SIZES[size], "cell": cell, **overrides})


@register_encoder("text_lstm_tiny", **_TEXT_RNN)
def text_lstm_tiny(vocab_size: int, **overrides) -> TextRNNEncoder:
    """Bidirectional LSTM, embed 32, hidden 32 per direction, 1 layer."""
    return _build("lstm", "tiny", vocab_size, overrides)


@register_encoder("text_lstm_small", **_TEXT_RNN)
def text_lstm_small(vocab_size: int, **overrides) -> TextRNNEncoder:
    """Bidirectional LSTM, embed 256, hidden 256 per direction, 2 layers."""
    return _build("lstm", "small", vocab_size, overrides)


@register_encoder("text_lstm_base", **_TEXT_RNN)
def text_lstm_base(vocab_size: int, **overrides) -> TextRNNEncoder:
    """Bidirectional LSTM, embed 512, hidden 512 per direction, 2 layers."""
    return _build("lstm", "base", vocab_size, overrides)


@register_encoder("text_gru_tiny", **_TEXT_RNN)
def text_gru_tiny(vocab_size: int, **overrides) -> TextRNNEncoder:
    """Bidirectional GRU, embed 32, hidden 32 per direction, 1 layer."""
    return _build("gru", "tiny", vocab_size, overrides)


@register_encoder("text_gru_small", **_TEXT_RNN)
def text_gru_small(vocab_size: int, **overrides) -> TextRNNEncoder:
    """Bidirectional GRU, embed 256, hidden 256 per direction, 2 layers."""
    return _build("gru", "small", vocab_size, overrides)


@register_encoder("text_gru_base", **_TEXT_RNN)
def text_gru_base(vocab_size: int, **overrides) -> TextRNNEncoder:
    """Bidirectional GRU, embed 512, hidden 512 per direction, 2 layers."""
    return _build("gru", "base", vocab_size, overrides)
