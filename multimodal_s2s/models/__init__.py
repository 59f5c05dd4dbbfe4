"""Models that pair an encoder with a decoder, and ``create_model`` to build them by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from multimodal_s2s.checkpoint import PRETRAINED_KEY, ModelConfig
from multimodal_s2s.encoders.weights import WeightsError, load_state_dict_checked, suite_checkpoint_part
from multimodal_s2s.models.encoder_decoder import EncoderDecoder
from multimodal_s2s.models.segmentation_model import SegmentationModel, upgrade_legacy_keys
from multimodal_s2s.registry import check_pair, decoder_entry, encoder_entry, list_decoders, list_encoders
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
    shared_embeddings: bool = False,
) -> nn.Module:
    """Build an EncoderDecoder (text decoder, needs ``vocab_size``) or a SegmentationModel (dense
    decoder, needs ``num_classes``). Raises IncompatiblePairError, before building anything,
    when the encoder does not emit what the decoder requires. ``shared_embeddings``: see ``ModelConfig``."""
    config = ModelConfig(
        encoder, decoder, dict(encoder_args or {}), dict(decoder_args or {}), vocab_size, num_classes, shared_embeddings
    )
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
    if text_out:
        model = EncoderDecoder(enc, dec_entry.factory(enc.info, vocab_size=size, **decoder_args), config)
        decoder_part = model.decoder
        if config.shared_embeddings:
            share_embeddings(model)
    elif config.shared_embeddings:
        raise ValueError(f"shared_embeddings needs a text decoder; {config.decoder!r} makes {dec_entry.output.value}")
    else:  # the head after a dense decoder knows the classes, unless the decoder makes class scores itself
        classes = {"num_classes": size} if dec_entry.makes_class_scores else {}
        model = SegmentationModel(enc, dec_entry.factory(enc.info, **classes, **decoder_args), config)
        decoder_part = nn.ModuleDict({"decoder": model.decoder, "head": model.head})
        if decoder_start is not None:
            decoder_start = _dense_decoder_start(decoder_start, config.decoder_args[PRETRAINED_KEY], model.head)
    for part, module, start in (("encoder", model.encoder, encoder_start), ("decoder", decoder_part, decoder_start)):
        if start is not None:
            load_state_dict_checked(module, start, config.to_dict()[f"{part}_args"][PRETRAINED_KEY], part)
    return model


def share_embeddings(model: EncoderDecoder) -> None:
    """The encoder reads the decoder's token embedding (one (V, D) table, and one parameter for the optimizer:
    it belongs to the encoder for ``freeze_encoder_epochs`` and ``encoder_lr_scale``). ValueError (one line)
    unless both parts have token embeddings of one vocabulary and width."""
    source, target = (getattr(part, "embedding", None) for part in (model.encoder, model.decoder))
    shapes = [None if table is None else tuple(table.weight.shape) for table in (source, target)]
    if None in shapes or shapes[0] != shapes[1]:
        raise ValueError(
            f"shared_embeddings needs a text encoder and a decoder with token embeddings of one vocabulary and "
            f"width (joint vocabulary, equal widths); got encoder {shapes[0]} and decoder {shapes[1]}"
        )
    model.encoder.embedding = target


def _dense_decoder_start(decoder: dict[str, Tensor], path: str, head: nn.Module) -> dict[str, Tensor]:
    """A dense decoder starts with the head that followed it (as it did when each dense decoder had its own
    classifier): the weights of both from checkpoint ``path`` of either key layout, keyed as in
    ``nn.ModuleDict(decoder=..., head=...)``."""
    weights = {f"decoder.{key}": value for key, value in decoder.items()}
    upgrade_legacy_keys(weights)
    if head.state_dict() and not any(key.startswith("head.") for key in weights):  # the shared head's layout
        weights.update((f"head.{key}", value) for key, value in suite_checkpoint_part(path, "head").items())
    return weights


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


__all__ = [
    "ModelConfig",
    "EncoderDecoder",
    "SegmentationModel",
    "create_model",
    "build_model",
    "share_embeddings",
    "list_decoders",
    "list_encoders",
]
