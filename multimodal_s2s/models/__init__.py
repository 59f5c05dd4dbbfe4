"""Models that pair an encoder with a decoder, and ``create_model`` to build them by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from multimodal_s2s.checkpoint import PRETRAINED_KEY, ModelConfig
from multimodal_s2s.encoders.weights import WeightsError, load_state_dict_checked, suite_checkpoint_part
from multimodal_s2s.models.encoder_decoder import EncoderDecoder
from multimodal_s2s.models.segmentation_model import SegmentationModel
from multimodal_s2s.registry import check_pair, decoder_entry, encoder_entry
from multimodal_s2s.types import DecoderOutput

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
    """Build a model from its config (as stored in a checkpoint).

    ``encoder_args.pretrained_path`` / ``decoder_args.pretrained_path`` may name a checkpoint of this
    suite: that part's weights are copied from it (a WeightsError naming the file when they do not fit),
    whatever task or modality the checkpoint was trained for. An encoder's pretrained_path may also be
    its backbone's own weights file (timm, torchvision), which the encoder reads itself."""
    check_pair(config.encoder, config.decoder)
    dec_entry = decoder_entry(config.decoder)
    text_out = dec_entry.output == DecoderOutput.TEXT
    size_name, size = ("vocab_size", config.vocab_size) if text_out else ("num_classes", config.num_classes)
    other = config.num_classes if text_out else config.vocab_size
    if not isinstance(size, int) or size < 1 or other is not None:
        raise ValueError(
            f"decoder {config.decoder!r} makes {dec_entry.output.value} output: give {size_name}=N (N >= 1) only"
        )
    encoder_args, encoder_start = _start_from_checkpoint(config.encoder_args, "encoder")
    decoder_args, decoder_start = _start_from_checkpoint(config.decoder_args, "decoder")
    enc = encoder_entry(config.encoder).factory(**encoder_args)
    dec = dec_entry.factory(enc.info, **{size_name: size}, **decoder_args)
    for part, module, start in (("encoder", enc, encoder_start), ("decoder", dec, decoder_start)):
        if start is not None:
            load_state_dict_checked(module, start, config.to_dict()[f"{part}_args"][PRETRAINED_KEY], part)
    model_cls = EncoderDecoder if text_out else SegmentationModel
    return model_cls(enc, dec, config)


def _start_from_checkpoint(args: dict[str, Any], part: str) -> tuple[dict[str, Any], dict[str, Tensor] | None]:
    """``args`` whose ``pretrained_path`` is a suite checkpoint -> (args without it, that part's weights);
    other args unchanged with None. A decoder's pretrained_path must be a suite checkpoint."""
    path = args.get(PRETRAINED_KEY)
    if path is None:
        return args, None
    weights = suite_checkpoint_part(path, part)
    if weights is None and part == "decoder":
        if not Path(path).is_file():
            raise FileNotFoundError(f"decoder pretrained_path {path}: file not found")
        raise WeightsError(f"decoder pretrained_path {path}: not a multimodal_s2s checkpoint")
    if weights is None:
        return args, None  # the encoder's own weights format (timm, torchvision): its factory reads it
    return {key: value for key, value in args.items() if key != PRETRAINED_KEY}, weights


__all__ = ["ModelConfig", "EncoderDecoder", "SegmentationModel", "create_model", "build_model"]
