"""SegmentationModel: any feature-map encoder with a dense decoder."""

from __future__ import annotations

from torch import Tensor, nn

from multimodal_s2s.checkpoint import ModelConfig
from multimodal_s2s.encoders.base import Encoder, check_inputs
from multimodal_s2s.registry import decoder_entry


class SegmentationModel(nn.Module):
    """Dense out: images (B, 3, H, W) -> class logits (B, num_classes, H, W)."""

    def __init__(self, encoder: Encoder, decoder: nn.Module, config: ModelConfig):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.config = config

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def draws_class_attention(self) -> bool:
        """Whether the decoder gives per-class attention maps (declared in its registry entry: the mask
        Transformer does)."""
        return decoder_entry(self.config.decoder).class_attention

    def forward(self, images: Tensor) -> Tensor:
        check_inputs(self.encoder.info, images, None)
        maps = self.encoder.encode_feature_maps(images)
        return self.decoder(maps, output_size=images.shape[-2:])

    def logits_and_class_attention(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, 3, H, W) -> logits (B, K, H, W) and per-class attention over the decoder's grid
        (B, K, h, w), each map summing to 1. ValueError when the decoder draws none."""
        if not self.draws_class_attention:
            raise ValueError(f"the {self.config.decoder!r} decoder has no class attention (mask_transformer has)")
        check_inputs(self.encoder.info, images, None)
        maps = self.encoder.encode_feature_maps(images)
        return self.decoder(maps, output_size=images.shape[-2:]), self.decoder.class_attention(maps)
