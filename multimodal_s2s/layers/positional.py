"""Positional encodings that work for any length (no table to outgrow)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


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
