"""A skip-connection dense decoder (U-Net, Ronneberger et al. 2015) over every feature map the encoder declares.

Built from ``EncoderInfo.channels`` and ``reductions`` alone, so it pairs with any feature-map encoder:
timm CNNs (their ``features_only`` stages), SegNet encoders (their pooled maps; the pool indices are
not needed) and ViTs (intermediate blocks as maps, all at the patch reduction).

From the deepest map up, each stage takes the running map x and the next shallower encoder map s:

    x = reduce(x)                 1x1 conv-BN-ReLU to the stage width, at the deeper (cheaper) resolution
    x = upsample(x, size of s)    nearest; skipped when x and s share a reduction (ViT)
    x = fuse(cat(x, s))           3x3 conv-BN-ReLU to the stage width

Reducing before upsampling and one 3x3 conv per stage keep the decoder cheap on the CPU (smp's Unet
upsamples first and runs two 3x3 convs per stage, and one more stage at full resolution). When the
shallowest map is coarser than ``logit_reduction`` (a ViT's patch grid), x2 upsampling + conv blocks
refine it down to that reduction. The result is the decoder's features, at that reduction:
``SegmentationHead`` (``decoders.dense``) classifies them and upsamples the logits to the input size.

Stage widths: the deepest width scaled by each stage's reduction (halving per x2 of resolution, as
smp's default (256, 128, 64, 32) on resnet18), clamped to [min_channels, max_channels].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s.layers.conv import conv_norm_act
from multimodal_s2s.registry import register_decoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps

DEFAULT_MIN_CHANNELS = 32
DEFAULT_MAX_CHANNELS = 256
DEFAULT_LOGIT_REDUCTION = 2
REFINE_FACTOR = 2


def stage_width(info: EncoderInfo, reduction: float, min_channels: int, max_channels: int) -> int:
    """The decoder width at ``reduction``: C_deepest * reduction / r_deepest, clamped to [min, max]."""
    scaled = info.channels[-1] * reduction / info.reductions[-1]
    return int(min(max(scaled, min_channels), max_channels))


class SkipStage(nn.Module):
    """Running map x (B, C_x, h, w) + skip map s (B, C_s, H_s, W_s) -> (B, width, H_s, W_s)."""

    def __init__(self, in_width: int, skip_width: int, width: int, upsample: bool):
        super().__init__()
        self.upsample = upsample
        self.reduce = conv_norm_act(in_width, width, kernel_size=1)
        self.fuse = conv_norm_act(width + skip_width, width, kernel_size=3)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.reduce(x)  # (B, width, h, w)
        if self.upsample:
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")  # (B, width, H_s, W_s)
        return self.fuse(torch.cat([x, skip], dim=1))


@register_decoder("unet", requires={Emits.FEATURE_MAPS}, output="dense")
class UNetDecoder(nn.Module):
    """Every feature map, deep to shallow with skip connections -> features (B, out_channels, H / r, W / r)."""


    def __init__(
        self,
        encoder_info: EncoderInfo,
        min_channels: int = DEFAULT_MIN_CHANNELS,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        logit_reduction: int = DEFAULT_LOGIT_REDUCTION,
    ):
        """
        Args:
            encoder_info: the encoder's declaration (channels and reductions, shallow to deep).
            min_channels, max_channels: the floor and the cap of the stage widths.
            logit_reduction: the resolution (input size / this) down to which coarse maps are
                refined by conv blocks: the reduction r of the features (coarser when the maps are not
                that fine), declared as ``out_reduction``.
        """
        super().__init__()
        channels, reductions = encoder_info.channels, encoder_info.reductions
        if not channels or Emits.FEATURE_MAPS not in encoder_info.emits or len(reductions) != len(channels):
            raise ValueError("the unet decoder needs an encoder that declares feature-map channels and reductions")
        if list(reductions) != sorted(reductions):
            raise ValueError(f"the unet decoder needs maps ordered shallow to deep, got reductions {reductions}")
        if not 1 <= min_channels <= max_channels or logit_reduction < 1:
            raise ValueError("unet decoder: need 1 <= min_channels <= max_channels and logit_reduction >= 1")
        self.num_maps = len(channels)
        self.stages = nn.ModuleList()
        width = channels[-1]
        for index in reversed(range(self.num_maps - 1)):
            out_width = stage_width(encoder_info, reductions[index], min_channels, max_channels)
            upsample = reductions[index] < reductions[index + 1]
            self.stages.append(SkipStage(width, channels[index], out_width, upsample))
            width = out_width
        self.refine = nn.ModuleList()
        reduction = reductions[0]
        for _ in range(_refine_steps(reduction, logit_reduction)):
            reduction /= REFINE_FACTOR
            out_width = stage_width(encoder_info, reduction, min_channels, max_channels)
            self.refine.append(conv_norm_act(width, out_width, kernel_size=3))
            width = out_width
        self.out_channels, self.out_reduction = width, reduction

    def forward(self, maps: FeatureMaps, output_size: Sequence[int]) -> Tensor:
        """maps from the encoder (the declared ones, shallow to deep) -> features (B, out_channels, H / r, W / r).

        ``output_size`` (the dense-decoder signature) is not needed: the shallowest map sets the size."""
        features = maps.features
        if len(features) != self.num_maps:
            raise ValueError(f"this unet decoder was built for {self.num_maps} feature maps, got {len(features)}")
        x = features[-1]  # (B, C_last, H / r_last, W / r_last)
        for stage, skip in zip(self.stages, reversed(features[:-1]), strict=True):
            x = stage(x, skip)  # (B, width_i, H / r_i, W / r_i)
        for block in self.refine:
            x = block(F.interpolate(x, scale_factor=REFINE_FACTOR, mode="nearest"))
        return x  # (B, out_channels, H / r, W / r)


def _refine_steps(reduction: float, logit_reduction: int) -> int:
    """How many x2 upsampling steps bring ``reduction`` down to ``logit_reduction`` without passing it."""
    if reduction <= logit_reduction:
        return 0
    return int(math.floor(math.log2(reduction / logit_reduction) + 1e-9))
