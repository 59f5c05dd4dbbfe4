"""Masks. Convention: True means valid; ``to_padding_mask`` is the one place it flips."""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """lengths (B,) -> mask (B, max_len) bool, True = valid position."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def to_padding_mask(mask: Tensor) -> Tensor:
    """mask (B, T) True = valid -> PyTorch's key_padding_mask (B, T) True = pad."""
    return ~mask


def conv_output_lengths(lengths: Tensor, kernel_size: int, stride: int, padding: int = 0) -> Tensor:
    """Valid lengths after a 1-D convolution or pooling along time: (B,) -> (B,)."""
    return torch.div(lengths + 2 * padding - kernel_size, stride, rounding_mode="floor") + 1
