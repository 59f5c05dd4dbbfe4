"""Transformer text encoder: token ids (B, L) + lengths (B,) -> SequenceOutput(memory, mask).

The encoder half of a Transformer translation model (Vaswani et al. 2017; BART's and Marian's shape):
token embedding scaled by sqrt(d_model), sinusoidal positions, ``torch.nn.TransformerEncoder`` layers
(pre-LN, GELU) with padded tokens masked as keys, a final LayerNorm. Paired with the ``transformer``
decoder it is a whole Transformer; any sequence decoder (``rnn_attention``) can read it. Options give
Marian's layout (``interop.marian``): post-LN layers, no final LayerNorm, another activation, no scale;
and BART's (``interop.bart``): learned positions and a LayerNorm on the embedded tokens plus positions.

Positions are sinusoidal by default, as in the suite's Transformer decoder and audio encoder (one helper,
``layers.positional``): no parameters, the same code on both sides of a translation model, and no
table to outgrow (``positions="learned"``: a table of ``max_length`` rows). ``max_length`` still refuses
very long sources with one line, before self-attention's (L, L) scores per head are built.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from multimodal_s2s.encoders.base import Encoder, check_token_ids
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.activations import activation as activation_module
from multimodal_s2s.layers.masks import lengths_to_mask, to_padding_mask
from multimodal_s2s.layers.positional import positional_encoding, token_embedding
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, Modality, SequenceOutput

DEFAULT_DROPOUT = 0.1
DEFAULT_MAX_LENGTH = 1024  # BART's and Marian's position table


class TextTransformerEncoder(Encoder):
    """token ids (B, L) + lengths (B,) -> SequenceOutput(memory (B, L, d_model), mask (B, L)).

    Args:
        vocab_size: number of token ids (PAD_ID embeds to zeros).
        d_model, num_layers, num_heads: Transformer size (d_model divisible by num_heads).
        ff_dim: feed-forward width.
        dropout: on the embedded tokens and in every layer (attention weights, feed-forward, residuals).
        max_length: the longest (padded) source accepted, in tokens.
        normalize_before: pre-LN layers (True) or post-LN ones (False, Marian's and BART's).
        final_norm: a LayerNorm after the last layer (pre-LN models have one; Marian has none).
        scale_embedding: multiply token embeddings by sqrt(d_model) (False: by 1).
        activation: the feed-forward activation (``layers.activations.ACTIVATIONS``: gelu, relu, swish).
        positions: "sinusoidal" or "learned" (a table of ``max_length`` rows, BART's).
        embed_norm: a LayerNorm on the embedded tokens plus positions (BART's ``layernorm_embedding``).

    Padded rows of ``memory`` are zeros; valid rows do not depend on the padding (it is masked as keys).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_dim: int = 1024,
        dropout: float = DEFAULT_DROPOUT,
        max_length: int = DEFAULT_MAX_LENGTH,
        normalize_before: bool = True,
        final_norm: bool = True,
        scale_embedding: bool = True,
        activation: str = "gelu",
        positions: str = "sinusoidal",
        embed_norm: bool = False,
    ):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by {num_heads} heads")
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.embed_scale = math.sqrt(d_model) if scale_embedding else 1.0
        self.embedding = token_embedding(vocab_size, d_model)
        self.positions = positional_encoding(positions, d_model, max_length)
        self.embed_norm = nn.LayerNorm(d_model) if embed_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, ff_dim, dropout, activation_module(activation), batch_first=True,
            norm_first=normalize_before,
        )
        # Nested tensors drop padded rows; off, so that pre-LN and post-LN layers take one path.
        norm = nn.LayerNorm(d_model) if final_norm else None
        self.layers = nn.TransformerEncoder(layer, num_layers, norm=norm, enable_nested_tensor=False)
        self.info = EncoderInfo(modality=Modality.TEXT, emits=frozenset({Emits.SEQUENCE}), out_dim=d_model)

    def encode_sequence(self, tokens: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """tokens (B, L) long, lengths (B,) (None = all L) -> SequenceOutput."""
        batch, max_len = tokens.shape
        if max_len > self.max_length:
            raise InputError(
                f"a source of {max_len} tokens is longer than the encoder's max_length {self.max_length}"
            )
        if lengths is None:
            lengths = torch.full((batch,), max_len, dtype=torch.long)
        check_token_ids(tokens, lengths, self.vocab_size)
        mask = lengths_to_mask(lengths.to(tokens.device), max_len)  # (B, L), True = valid
        rows = self.dropout(self.embed_norm(self.positions(self.embedding(tokens) * self.embed_scale)))  # (B, L, D)
        memory = self.layers(rows, src_key_padding_mask=to_padding_mask(mask))  # (B, L, D)
        return SequenceOutput(memory=torch.where(mask.unsqueeze(-1), memory, 0.0), mask=mask)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        return self.encode_sequence(tokens, lengths)


_SIZES = {
    "tiny": {"d_model": 64, "num_layers": 2, "num_heads": 4, "ff_dim": 128},
    "small": {"d_model": 256, "num_layers": 4, "num_heads": 4, "ff_dim": 1024},
    "base": {"d_model": 512, "num_layers": 6, "num_heads": 8, "ff_dim": 2048},
}
_TEXT = {"modality": Modality.TEXT, "emits": {Emits.SEQUENCE}}


@register_encoder("text_transformer_tiny", **_TEXT)
def text_transformer_tiny(vocab_size: int, **overrides) -> TextTransformerEncoder:
    """d_model 64, 2 layers, 4 heads, feed-forward 128; overrides: the arguments of TextTransformerEncoder."""
    return TextTransformerEncoder(vocab_size, **{**_SIZES["tiny"], **overrides})


@register_encoder("text_transformer_small", **_TEXT)
def text_transformer_small(vocab_size: int, **overrides) -> TextTransformerEncoder:
    """d_model 256, 4 layers, 4 heads, feed-forward 1024; same overrides as text_transformer_tiny."""
    return TextTransformerEncoder(vocab_size, **{**_SIZES["small"], **overrides})


@register_encoder("text_transformer_base", **_TEXT)
def text_transformer_base(vocab_size: int, **overrides) -> TextTransformerEncoder:
    """d_model 512, 6 layers, 8 heads, feed-forward 2048 (Vaswani et al. 2017, base); same overrides."""
    return TextTransformerEncoder(vocab_size, **{**_SIZES["base"], **overrides})
