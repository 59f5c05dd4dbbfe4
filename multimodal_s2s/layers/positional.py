"""Token embeddings and positional encodings: sinusoids that work for any length (no table to outgrow), or a
learned table (whisper's decoder, BART's encoder and decoder)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from multimodal_s2s.errors import InputError
from multimodal_s2s.types import PAD_ID

#: The position schemes of the text Transformer encoder and decoder (``positional_encoding``).
POSITIONS = ("sinusoidal", "learned")


def token_embedding(vocab_size: int, d_model: int) -> nn.Embedding:
    """A Transformer's token embedding: N(0, 1/d_model), so rows are of unit scale once multiplied by
    sqrt(d_model) (and logits of unit scale when tied to the output); PAD_ID embeds to zeros."""
    embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD_ID)
    nn.init.normal_(embedding.weight, std=d_model**-0.5)
    nn.init.zeros_(embedding.weight[PAD_ID])
    return embedding


def check_token_range(tokens: Tensor, vocab_size: int) -> None:
    """Raise InputError when an id of ``tokens`` is outside 0..vocab_size-1, the rows of a token embedding
    (one device sync). Skipped inside a ``torch.compile`` graph, where reading the ids back would break the
    graph at every step (a bad id then fails in the embedding lookup instead)."""
    if torch.compiler.is_compiling():
        return
    low, high = torch.stack(torch.aminmax(tokens)).tolist()
    if low < 0 or high >= vocab_size:
        raise InputError(
            f"token ids must be in 0..{vocab_size - 1} (the range [0, {vocab_size})), got values in {low}..{high}"
        )


def sinusoidal_positions(positions: Tensor, dim: int) -> Tensor:
    """positions (..., ) float or long -> encodings (..., dim), as in Vaswani et al. 2017."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float().unsqueeze(-1) * freqs  # (..., half)
    enc = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return nn.functional.pad(enc, (0, dim - 2 * half))


class SinusoidalPositions(nn.Module):
    """Adds sinusoidal encodings of positions ``offset .. offset + L - 1`` to x (B, L, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        return x + sinusoidal_positions(positions, self.dim).to(x.dtype)


class LearnedPositions(nn.Module):
    """Adds row ``offset + i`` of a learned table (max_positions, D) to position i of x (B, L, D); InputError
    past the table."""

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_positions, dim))
        nn.init.normal_(self.weight, std=dim**-0.5)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        end = offset + x.shape[1]
        if end > self.weight.shape[0]:
            raise InputError(f"positions up to {end}, the learned table has {self.weight.shape[0]}")
        return x + self.weight[offset:end].to(x.dtype)


def positional_encoding(positions: str, dim: int, max_positions: int) -> SinusoidalPositions | LearnedPositions:
    """The module that adds positions of scheme ``positions`` (``POSITIONS``) to x (B, L, dim): sinusoids, or a
    learned table of ``max_positions`` rows. ValueError for another scheme."""
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, not {positions!r}")
    return SinusoidalPositions(dim) if positions == "sinusoidal" else LearnedPositions(max_positions, dim)
