"""Models that pair an encoder with a decoder, and ``create_model`` to build them by name."""

from __future__ import annotations

from typing import Any

from torch import nn

from multimodal_s2s.models.config import ModelConfig
from multimodal_s2s.models.encoder_decoder import EncoderDecoder
from multimodal_s2s.models.segmentation_model import SegmentationModel
from multimodal_s2s.registry import check_pair, decoder_entry, encoder_entry

# The built-in encoders and decoders register themselves on import (after the registry, before any lookup).
import multimodal_s2s.decoders  # noqa: E402,F401  isort: skip
import multimodal_s2s.encoders  # noqa: E402,F401  isort: skip


def create_model(
    encoder: str,
    decoder: str,
    encoder_args: dict[str, Any] | None = None,
    decoder_args: dict[str, Any] | None = None,
    vocab_size: int | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """Build an EncoderDecoder (text decoder, needs ``vocab_size``) or a SegmentationModel (dense
    decoder, needs ``num_classes``). Raises IncompatiblePairError, before building anything,
    when the encoder does not emit what the decoder requires."""
    config = ModelConfig(encoder, decoder, dict(encoder_args or {}), dict(decoder_args or {}), vocab_size, num_classes)
    return build_model(config)


def build_model(config: ModelConfig) -> nn.Module:
    """Rebuild a model from its config (as stored in a checkpoint)."""
    check_pair(config.encoder, config.decoder)
    dec_entry = decoder_entry(config.decoder)
    size_name, size = (
        ("vocab_size", config.vocab_size) if dec_entry.output == "text" else ("num_classes", config.num_classes)
    )
    other = config.num_classes if dec_entry.output == "text" else config.vocab_size
    if not isinstance(size, int) or size < 1 or other is not None:
        raise ValueError(
            f"decoder {config.decoder!r} makes {dec_entry.output} output: give {size_name}=N (N >= 1) only"
        )
    enc = encoder_entry(config.encoder).factory(**config.encoder_args)
    dec = dec_entry.factory(enc.info, **{size_name: size}, **config.decoder_args)
    model_cls = EncoderDecoder if dec_entry.output == "text" else SegmentationModel
    return model_cls(enc, dec, config)


__all__ = ["ModelConfig", "EncoderDecoder", "SegmentationModel", "create_model", "build_model"]
