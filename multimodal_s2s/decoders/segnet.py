"""SegNet's dense decoder (Badrinarayanan et al., TPAMI 2017), built only from the encoder's EncoderInfo.

With an encoder that emits POOL_INDICES, the decoder mirrors the encoder's stages, deep to shallow:
unpool with the stored max-pool indices, then conv-BN-ReLU blocks whose last one steps the width
down to the next shallower stage's. Only the deepest map and the indices are used (no skip connections).

With any other feature-map encoder (CNN, ViT) it falls back to interpolation: from the deepest map,
bilinear x2 upsampling + a conv block per step until full resolution, widths halving to a floor.
Either way the features (B, C, H, W) are at the input's size; ``SegmentationHead`` (``decoders.dense``),
a 1x1 conv, classifies them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s.layers.conv import conv_norm_act
from multimodal_s2s.layers.pooling import max_unpool2d
from multimodal_s2s.registry import register_decoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps

UPSAMPLE_FACTOR = 2
DEFAULT_KERNEL_SIZE = 3
DEFAULT_MIN_CHANNELS = 32


def _mirrored_stages(channels: Sequence[int], stage_depths: Sequence[int], kernel_size: int) -> nn.ModuleList:
    """Decoder stages, deep to shallow: ``depth`` conv blocks, the last one stepping to the shallower width."""
    stages = nn.ModuleList()
    for index in reversed(range(len(channels))):
        width, out_width = channels[index], channels[max(index - 1, 0)]
        out_widths = [width] * (stage_depths[index] - 1) + [out_width]
        stages.append(nn.Sequential(*(conv_norm_act(width, out, kernel_size) for out in out_widths)))
    return stages


def _upsampling_blocks(in_width: int, reduction: int, min_channels: int, kernel_size: int) -> tuple[nn.ModuleList, int]:
    """One conv block per x2 step from ``reduction`` to full resolution, widths halving to a floor.

    Returns the blocks and the width of the last one.
    """
    num_steps = max(0, round(math.log2(reduction)))
    floor = min(min_channels, in_width)
    blocks, width = nn.ModuleList(), in_width
    for step in range(1, num_steps + 1):
        out_width = max(in_width // UPSAMPLE_FACTOR**step, floor)
        blocks.append(conv_norm_act(width, out_width, kernel_size))
        width = out_width
    return blocks, width


@register_decoder("segnet", requires={Emits.FEATURE_MAPS}, output="dense")
class SegNetDecoder(nn.Module):
    """Deepest feature map (+ pool indices when the encoder has them) -> features (B, out_channels, H, W)."""

    out_reduction: ClassVar[int] = 1

    def __init__(
        self,
        encoder_info: EncoderInfo,
        kernel_size: int = DEFAULT_KERNEL_SIZE,
        min_channels: int = DEFAULT_MIN_CHANNELS,
    ):
        """
        Args:
            encoder_info: the encoder's declaration (channels, reductions, stage_depths, emits).
            kernel_size: of the decoder convs (3 as in SegNet; SegNet-Basic's paper decoder uses 7).
            min_channels: the floor of the halving widths, when there are no pool indices.
        """
        super().__init__()
        channels = encoder_info.channels
        declared = Emits.FEATURE_MAPS in encoder_info.emits and len(encoder_info.reductions) == len(channels)
        if not channels or not declared:
            raise ValueError("the segnet decoder needs an encoder that declares feature-map channels and reductions")
        self.uses_pool_indices = Emits.POOL_INDICES in encoder_info.emits
        self.deepest_reduction = encoder_info.reductions[-1]
        if self.uses_pool_indices:
            depths = encoder_info.stage_depths or (1,) * len(channels)
            if len(depths) != len(channels):
                raise ValueError(f"stage_depths {depths} do not match the {len(channels)} feature maps")
            self.stages, width = _mirrored_stages(channels, depths, kernel_size), channels[0]
        else:
            self.stages, width = _upsampling_blocks(channels[-1], self.deepest_reduction, min_channels, kernel_size)
        self.out_channels = width

    def forward(self, maps: FeatureMaps, output_size: Sequence[int]) -> Tensor:
        """maps from the encoder, output_size (H, W) -> features (B, out_channels, H, W)."""
        deepest = maps.features[-1]  # (B, C_last, H / r, W / r)
        return self._unpool(deepest, maps) if self.uses_pool_indices else self._upsample(deepest, output_size)

    def _unpool(self, x: Tensor, maps: FeatureMaps) -> Tensor:
        """(B, C_last, h, w) -> (B, C_0, H, W): unpool with each stage's indices, deep to shallow, then convs."""
        counts = {len(maps.pool_indices or ()), len(maps.pool_input_sizes or ())}
        if counts != {len(self.stages)}:
            raise ValueError(
                f"this segnet decoder was built for an encoder with pool indices: FeatureMaps needs "
                f"{len(self.stages)} pool_indices and pool_input_sizes"
            )
        unpool_steps = zip(reversed(maps.pool_indices), reversed(maps.pool_input_sizes), strict=True)
        for stage, (indices, size) in zip(self.stages, unpool_steps, strict=True):
            x = stage(max_unpool2d(x, indices, size))  # (B, C_i, H_i, W_i) -> (B, C_{i-1}, H_i, W_i)
        return x

    def _upsample(self, x: Tensor, output_size: Sequence[int]) -> Tensor:
        """(B, C_last, H / r, W / r) -> (B, C', H, W): bilinear x2 + conv block per step."""
        height, width = output_size
        for step, block in enumerate(self.stages, start=1):
            remaining = self.deepest_reduction / UPSAMPLE_FACTOR**step  # reduction left after this step
            last = step == len(self.stages)
            size = (height, width) if last else (math.ceil(height / remaining), math.ceil(width / remaining))
            x = block(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return x
