"""CNN image encoders over any timm CNN, and loading encoder weights from a local file.

``load_weights_file`` / ``load_state_dict_checked`` are shared by every image encoder
(cnn, segnet, vit): no weights are ever downloaded, a local file is read instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import timm
import torch
from torch import Tensor, nn

from multimodal_s2s.encoders.base import Encoder, InputError
from multimodal_s2s.layers.image_positions import feature_map_to_sequence
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Modality, SequenceOutput

SAFETENSORS_SUFFIX = ".safetensors"
#: Buffers that old checkpoints may lack and that BatchNorm fills in itself.
OPTIONAL_BUFFER_SUFFIX = "num_batches_tracked"


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the encoder."""


def load_weights_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state dict from a local ``.safetensors`` file or a ``torch.save`` file (tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == SAFETENSORS_SUFFIX:
            state = safetensors.torch.load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many types for unreadable files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(f"cannot read weights file {path}: {reason}") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return dict(state)


def load_state_dict_checked(module: nn.Module, state: Mapping[str, Tensor], path: str | os.PathLike) -> None:
    """Copy ``state`` into every parameter and buffer of ``module``, in one clear error if it does not fit.

    Entries the module does not have (a classifier head, unused stages) are ignored; every
    entry the module has must be present with the same shape.
    """
    own = module.state_dict()
    needed = [key for key in own if not key.endswith(OPTIONAL_BUFFER_SUFFIX)]
    missing = [key for key in needed if key not in state]
    if missing:
        raise WeightsError(
            f"weights file {path} lacks {len(missing)} of the {len(needed)} entries the encoder needs, "
            f"e.g. {missing[0]!r}"
        )
    for key in needed:
        if state[key].shape != own[key].shape:
            raise WeightsError(
                f"weights file {path}: {key!r} has shape {tuple(state[key].shape)}, "
                f"the encoder needs {tuple(own[key].shape)}"
            )
    module.load_state_dict({key: state[key] for key in own if key in state}, strict=False)


def reject_lengths(lengths: Tensor | None) -> None:
    """Images have no lengths: raise InputError when some are given."""
    if lengths is not None:
        raise InputError("image encoders take no lengths (every image is used whole); pass lengths=None")


class CNNEncoder(Encoder):
    """Any timm CNN, as feature maps of all its stages and as rows of its deepest grid.

    ``encode_feature_maps``: images (B, 3, H, W) -> FeatureMaps([(B, C_i, H/r_i, W/r_i)]).
    ``encode_sequence``: images -> memory (B, h*w, C_last) of the deepest grid, with fixed
    2-D sinusoidal positions added so that a text decoder knows where each cell is; mask all True.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained_path: str | None = None,
        out_indices: Sequence[int] | None = None,
        **timm_kwargs: Any,
    ):
        """
        Args:
            backbone: a timm model name with ``features_only`` support (e.g. "resnet18", "convnext_atto").
            pretrained_path: local weights of the timm model (its classifier entries are ignored).
            out_indices: which stages to return (timm's default: all of them).
            timm_kwargs: passed on to ``timm.create_model``.
        """
        super().__init__()
        if out_indices is not None:
            timm_kwargs["out_indices"] = tuple(out_indices)
        self.backbone = timm.create_model(backbone, features_only=True, pretrained=False, **timm_kwargs)
        if pretrained_path is not None:
            load_state_dict_checked(self.backbone, load_weights_file(pretrained_path), pretrained_path)
        channels = tuple(self.backbone.feature_info.channels())
        self.info = EncoderInfo(
            modality=Modality.IMAGE,
            emits=frozenset({Emits.SEQUENCE, Emits.FEATURE_MAPS}),
            out_dim=channels[-1],
            channels=channels,
            reductions=tuple(self.backbone.feature_info.reduction()),
        )

    def encode_feature_maps(self, images: Tensor) -> FeatureMaps:
        """images (B, 3, H, W) -> the maps of every stage, shallow to deep."""
        return FeatureMaps(features=list(self.backbone(images)))

    def encode_sequence(self, images: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """images (B, 3, H, W) -> memory (B, h*w, C_last), mask (B, h*w) all True."""
        reject_lengths(lengths)
        return feature_map_to_sequence(self.backbone(images)[-1])


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
