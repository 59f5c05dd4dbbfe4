"""Max unpooling written with ``scatter``, so that it exports to ONNX (``F.max_unpool2d`` does not)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def max_unpool2d(x: Tensor, indices: Tensor, output_size: Sequence[int]) -> Tensor:
    """Place each value of ``x`` at its max-pool index in a zero map; equal to ``F.max_unpool2d``.

    Args:
        x: (B, C, h, w) pooled values.
        indices: (B, C, h, w) long, from ``max_pool2d(..., return_indices=True)``: positions in
            the flattened (H * W) plane of each (batch, channel) pair.
        output_size: the (H, W) the pooling saw (extra leading entries, as in a full shape, are ignored).

    Returns:
        (B, C, H, W): ``x`` at ``indices``, zeros elsewhere.
    """
    if indices.shape != x.shape:
        raise ValueError(f"max_unpool2d: indices shape {tuple(indices.shape)} differs from x shape {tuple(x.shape)}")
    height, width = output_size[-2], output_size[-1]
    values = x.flatten(2)  # (B, C, h*w)
    planes = values.new_zeros(values.shape[0], values.shape[1], height * width)  # (B, C, H*W)
    planes = planes.scatter(2, indices.flatten(2), values)
    return planes.view(x.shape[0], x.shape[1], height, width)
