"""SegmentationModel: any feature-map encoder with a dense decoder, and one head after it."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from multimodal_s2s.checkpoint import ModelConfig
from multimodal_s2s.decoders.dense import DenseDecoder, SegmentationHead
from multimodal_s2s.encoders.base import Encoder, check_inputs
from multimodal_s2s.registry import decoder_entry

#: Where the classifier's weights were before the head was shared (each dense decoder had its own), and are now.
LEGACY_CLASSIFIER_PREFIX, CLASSIFIER_PREFIX = "decoder.classifier.", "head.classifier."


class SegmentationModel(nn.Module):
    """Dense out: images (B, 3, H, W) -> class logits (B, num_classes, H, W)."""

    def __init__(self, encoder: Encoder, decoder: DenseDecoder, config: ModelConfig):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        makes_class_scores = decoder_entry(config.decoder).makes_class_scores
        self.head = SegmentationHead.for_decoder(decoder, config.num_classes, makes_class_scores)
        self.config = config
        self.register_load_state_dict_pre_hook(_upgrade_legacy_keys)

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
        return self.head(self.decoder(maps, images.shape[-2:]), images.shape[-2:])

    def logits_and_class_attention(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, 3, H, W) -> logits (B, K, H, W) and per-class attention over the decoder's grid
        (B, K, h, w), each map summing to 1. ValueError when the decoder draws none."""
        if not self.draws_class_attention:
            raise ValueError(f"the {self.config.decoder!r} decoder has no class attention (mask_transformer has)")
        check_inputs(self.encoder.info, images, None)
        maps = self.encoder.encode_feature_maps(images)
        logits = self.head(self.decoder(maps, images.shape[-2:]), images.shape[-2:])
        return logits, self.decoder.class_attention(maps)


def upgrade_legacy_keys(state_dict: dict[str, Any], prefix: str = "") -> None:
    """Rename, in place, the classifier weights of a segmentation model saved before the shared head
    (``{prefix}decoder.classifier.*``) to where the head keeps them (``{prefix}head.classifier.*``)."""
    old = prefix + LEGACY_CLASSIFIER_PREFIX
    for key in [key for key in state_dict if key.startswith(old)]:
        state_dict[prefix + CLASSIFIER_PREFIX + key.removeprefix(old)] = state_dict.pop(key)


def _upgrade_legacy_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """``load_state_dict`` pre-hook: old checkpoints (a classifier in each dense decoder) load as they did."""
    upgrade_legacy_keys(state_dict, prefix)
