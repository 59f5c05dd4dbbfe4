"""CNN image encoders over any timm CNN (weights by name through timm, see interop/pretrained.py, or from a
local file, see encoders/weights.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from multimodal_s2s.encoders.base import Encoder
from multimodal_s2s.encoders.weights import load_state_dict_checked, load_weights_file
from multimodal_s2s.errors import InputError
from multimodal_s2s.interop.pretrained import check_pretrained, create_timm_model
from multimodal_s2s.layers.image_positions import feature_map_to_sequence
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Modality, SequenceOutput


def reject_lengths(lengths: Tensor | None) -> None:
    """Images have no lengths: raise InputError when some are given."""
    if lengths is not None:
        raise InputError("image encoders take no lengths (every image is used whole); pass lengths=None")


class CNNEncoder(Encoder):
    """Any timm CNN, as feature maps of all its stages and as rows of its deepest grid.

    ``pretrained_weights``: what weights by name expect of images (None: random or a local file).

    ``encode_feature_maps``: images (B, 3, H, W) -> FeatureMaps([(B, C_i, H/r_i, W/r_i)]).
    ``encode_sequence``: images -> memory (B, h*w, C_last) of the deepest grid, with fixed
    2-D sinusoidal positions added so that a text decoder knows where each cell is; mask all True.
    With ``position_channels`` P > 0 the positions get P channels of their own instead (memory
    (B, h*w, C_last + P)): added, they share the channels of the CNN's features, whose variation
    between cells (colours, kinds) can drown them (see tasks/captioning/README.md, spatial relations).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained_path: str | None = None,
        out_indices: Sequence[int] | None = None,
        position_scale: float = 1.0,
        position_channels: int = 0,
        pretrained: bool | str = False,
        **timm_kwargs: Any,
    ):
        """
        Args:
            backbone: a timm model name with ``features_only`` support (e.g. "resnet18", "convnext_atto").
            pretrained_path: local weights of the timm model (its classifier entries are ignored).
            out_indices: which stages to return (timm's default: all of them).
            position_scale: amplitude of the 2-D positions of the sequence (1: the sinusoids' own, in [-1, 1]).
            position_channels: 0: positions added to the features; P > 0 (even): P channels of positions
                appended to them, half for the row and half for the column.
            pretrained: True: timm's default weights of ``backbone``; a tag (e.g. "a1_in1k"): ``backbone.tag``;
                downloaded into or read from the huggingface_hub cache (``interop.pretrained``).
            timm_kwargs: passed on to ``timm.create_model``.
        """
        super().__init__()
        if position_channels < 0 or position_channels % 2:
            raise ValueError(f"position_channels must be 0 or a positive even number, got {position_channels}")
        check_pretrained(pretrained, pretrained_path)
        if out_indices is not None:
            timm_kwargs["out_indices"] = tuple(out_indices)
        self.backbone, self.pretrained_weights = create_timm_model(
            backbone, pretrained, features_only=True, **timm_kwargs
        )
        if pretrained_path is not None:
            load_state_dict_checked(self.backbone, load_weights_file(pretrained_path), pretrained_path)
        channels = tuple(self.backbone.feature_info.channels())
        self.position_scale, self.position_channels = position_scale, position_channels
        self.info = EncoderInfo(
            modality=Modality.IMAGE,
            emits=frozenset({Emits.SEQUENCE, Emits.FEATURE_MAPS}),
            out_dim=channels[-1] + position_channels,
            channels=channels,
            reductions=tuple(self.backbone.feature_info.reduction()),
        )

    def encode_feature_maps(self, images: Tensor) -> FeatureMaps:
        """images (B, 3, H, W) -> the maps of every stage, shallow to deep."""
        return FeatureMaps(features=list(self.backbone(images)))

    def encode_sequence(self, images: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """images (B, 3, H, W) -> memory (B, h*w, C_last + position_channels), mask (B, h*w) all True."""
        reject_lengths(lengths)
        return feature_map_to_sequence(self.backbone(images)[-1], self.position_scale, self.position_channels)


_CNN_EMITS = {Emits.SEQUENCE, Emits.FEATURE_MAPS}


@register_encoder("cnn", modality=Modality.IMAGE, emits=_CNN_EMITS)
def cnn(backbone: str = "resnet18", **kwargs: Any) -> CNNEncoder:
    """Any timm CNN by name."""
    return CNNEncoder(backbone, **kwargs)


@register_encoder("cnn_tiny", modality=Modality.IMAGE, emits=_CNN_EMITS)
def cnn_tiny(**kwargs: Any) -> CNNEncoder:
    """timm resnet10t (4.9M parameters): one block per stage, for tests and quick runs."""
    return CNNEncoder("resnet10t", **kwargs)


@register_encoder("cnn_small", modality=Modality.IMAGE, emits=_CNN_EMITS)
def cnn_small(**kwargs: Any) -> CNNEncoder:
    """timm resnet18."""
    return CNNEncoder("resnet18", **kwargs)


@register_encoder("cnn_base", modality=Modality.IMAGE, emits=_CNN_EMITS)
def cnn_base(**kwargs: Any) -> CNNEncoder:
    """timm resnet50."""
    return CNNEncoder("resnet50", **kwargs)
