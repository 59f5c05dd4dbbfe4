"""What every dense decoder offers, and the one head after any of them (as segmentation_models_pytorch's
``SegmentationHead`` follows any of its decoders).

A dense decoder is built as ``Decoder(encoder_info, **args)``, with ``num_classes=K`` too when its registry
entry declares ``makes_class_scores``, and declares what it returns before any forward pass (as encoders do
in ``EncoderInfo``):

- ``forward(maps, output_size) -> features`` (B, out_channels, H / out_reduction, W / out_reduction):
  ``maps`` from the encoder; ``output_size`` the input's (H, W), which a decoder that reaches full
  resolution by itself (SegNet's) needs.
- ``out_channels``: C of the features; ``out_reduction``: input size / feature size (1: the features
  have the input's size exactly).
- its registry entry's ``makes_class_scores``: the features already are the per-class scores (C = K).
  Segmenter's mask Transformer is such a decoder: its class embeddings meet the patches inside it (which is what its
  class attention shows), so its masks at its own stride are its features.

``SegmentationHead`` turns features into logits (B, K, H, W) at the input's size: a 1x1 conv (the
per-pixel classifier) unless the features are class scores, then bilinear resizing unless the features
have the input's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s.types import FeatureMaps


class DenseDecoder(Protocol):
    """A dense decoder as ``SegmentationModel`` uses it (see the module docstring)."""

    out_channels: int
    out_reduction: float

    def __call__(self, maps: FeatureMaps, output_size: Sequence[int]) -> Tensor:
        """maps from the encoder, output_size (H, W) -> features (B, out_channels, h, w)."""
        ...


class SegmentationHead(nn.Module):
    """Features (B, C, h, w) -> class logits (B, K, H, W) at the input's size."""

    def __init__(self, in_channels: int, num_classes: int, classify: bool, upsample: bool):
        """
        Args:
            in_channels: C of the decoder's features.
            num_classes: K.
            classify: a 1x1 conv from C to K channels; False when the features are class scores (C = K).
            upsample: resize bilinearly to the input size; False when the features have it.
        """
        super().__init__()
        if not classify and in_channels != num_classes:
            raise ValueError(f"class-score features need {num_classes} channels (one per class), got {in_channels}")
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1) if classify else nn.Identity()
        self.upsample = upsample

    @classmethod
    def for_decoder(cls, decoder: DenseDecoder, num_classes: int, makes_class_scores: bool) -> SegmentationHead:
        """The head for what ``decoder`` declares it returns (``makes_class_scores``: its registry entry's)."""
        classify, upsample = not makes_class_scores, decoder.out_reduction != 1
        return cls(decoder.out_channels, num_classes, classify, upsample)

    def forward(self, features: Tensor, output_size: Sequence[int]) -> Tensor:
        """features (B, C, h, w), output_size (H, W) -> logits (B, K, H, W)."""
        logits = self.classifier(features)  # (B, K, h, w)
        if self.upsample:
            logits = F.interpolate(logits, size=tuple(output_size), mode="bilinear", align_corners=False)
        return logits
