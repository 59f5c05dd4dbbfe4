"""Fixed 2-D sinusoidal positions, and feature maps turned into rows that a text decoder attends to."""

from __future__ import annotations

import torch
from torch import Tensor

from multimodal_s2s.layers.positional import sinusoidal_positions
from multimodal_s2s.types import SequenceOutput


def grid_positions_2d(height: int, width: int, dim: int, device: torch.device | None = None) -> Tensor:
    """Encodings of the cells of a (height, width) grid in row-major order -> (height * width, dim).

    The first ``dim // 2`` channels encode the row, the rest the column (each as in Vaswani et al. 2017).
    """
    cells = torch.arange(height * width, device=device)  # (H*W,); division rather than repeats exports to ONNX
    rows = cells // width
    cols = cells - rows * width
    row_dim = dim // 2
    return torch.cat([sinusoidal_positions(rows, row_dim), sinusoidal_positions(cols, dim - row_dim)], dim=-1)


def feature_map_to_sequence(
    feature_map: Tensor, position_scale: float = 1.0, position_channels: int = 0
) -> SequenceOutput:
    """(B, C, H, W) -> SequenceOutput(memory (B, H*W, C) with 2-D positions (times ``position_scale``) added,
    mask (B, H*W) all True); ``position_channels`` P > 0: the positions appended as P channels of their own
    instead, memory (B, H*W, C + P)."""
    batch, channels, height, width = feature_map.shape
    rows = feature_map.flatten(2).transpose(1, 2)  # (B, H*W, C)
    positions = grid_positions_2d(height, width, position_channels or channels, feature_map.device)
    positions = (position_scale * positions).to(rows.dtype)  # (H*W, P or C)
    rows = torch.cat([rows, positions.expand(batch, -1, -1)], dim=-1) if position_channels else rows + positions
    mask = torch.ones(batch, height * width, dtype=torch.bool, device=feature_map.device)
    return SequenceOutput(memory=rows, mask=mask)
