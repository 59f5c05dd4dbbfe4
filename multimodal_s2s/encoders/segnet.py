"""SegNet encoders (Badrinarayanan, Kendall and Cipolla, TPAMI 2017) that keep their max-pool indices.

Each stage is ``depth`` x (conv + BatchNorm + ReLU) followed by 2x2 max pooling with indices;
the SegNet decoder unpools with those indices instead of learning to upsample.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from torch import Tensor, nn
from torchvision.models import VGG16_BN_Weights

from multimodal_s2s.encoders.base import Encoder
from multimodal_s2s.encoders.cnn import reject_lengths
from multimodal_s2s.encoders.pretrained import check_pretrained, torchvision_state_dict
from multimodal_s2s.encoders.weights import WeightsError, load_state_dict_checked, load_weights_file
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.conv import conv_norm_act
from multimodal_s2s.layers.image_positions import feature_map_to_sequence
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Grid, Modality, Rounding, SequenceOutput

POOL_SIZE = 2  # every stage halves H and W
VGG16_CHANNELS = (64, 128, 256, 512, 512)
VGG16_STAGE_DEPTHS = (2, 2, 3, 3, 3)
VGG_KERNEL_SIZE = 3
BASIC_CHANNELS = 64
BASIC_KERNEL_SIZE = 7
BASIC_NUM_STAGES = 4
#: torchvision VGG state-dict keys: ``features.<layer index>.<parameter>``.
_VGG_FEATURE_KEY = re.compile(r"^features\.(\d+)\.(.+)$")


class SegNetEncoder(Encoder):
    """Stages of conv-BN-ReLU blocks, each followed by 2x2 max pooling that keeps its indices.

    ``encode_feature_maps``: images (B, 3, H, W) -> FeatureMaps with the pooled output of each
    stage (B, C_i, H / 2^(i+1), W / 2^(i+1)) (floor), its pool indices, and the (H, W) each pooling saw.
    ``encode_sequence``: the deepest pooled map as rows (B, h*w, C_last) with 2-D positions added.
    """

    def __init__(
        self,
        channels: Sequence[int],
        stage_depths: Sequence[int],
        kernel_size: int = VGG_KERNEL_SIZE,
        in_channels: int = 3,
        conv_bias: bool = False,
    ):
        super().__init__()
        if len(channels) != len(stage_depths) or not channels or min(stage_depths) < 1:
            raise ValueError(f"need one depth >= 1 per stage: channels={channels}, stage_depths={stage_depths}")
        self.stages = nn.ModuleList()
        width = in_channels
        for stage_channels, depth in zip(channels, stage_depths, strict=True):
            blocks = []
            for _ in range(depth):
                blocks.append(conv_norm_act(width, stage_channels, kernel_size, bias=conv_bias))
                width = stage_channels
            self.stages.append(nn.Sequential(*blocks))
        self.pool = nn.MaxPool2d(POOL_SIZE, POOL_SIZE, return_indices=True)
        self.info = EncoderInfo(
            modality=Modality.IMAGE,
            emits=frozenset({Emits.FEATURE_MAPS, Emits.POOL_INDICES, Emits.SEQUENCE}),
            out_dim=channels[-1],
            channels=tuple(channels),
            reductions=tuple(POOL_SIZE ** (i + 1) for i in range(len(channels))),
            stage_depths=tuple(stage_depths),
            grid=Grid(POOL_SIZE ** len(channels), Rounding.FLOOR),  # each 2x2 pool halves a side, rounding down
        )

    def encode_feature_maps(self, images: Tensor) -> FeatureMaps:
        """images (B, 3, H, W) -> pooled maps, pool indices and pool input sizes, shallow to deep."""
        min_size = self.info.reductions[-1]
        if min(images.shape[-2:]) < min_size:
            raise InputError(
                f"images must be at least {min_size}x{min_size} for {len(self.stages)} poolings, "
                f"got {tuple(images.shape[-2:])}"
            )
        features, indices, sizes = [], [], []
        x = images
        for stage in self.stages:
            x = stage(x)  # (B, C_i, H_i, W_i)
            sizes.append(x.shape[-2:])
            x, stage_indices = self.pool(x)  # (B, C_i, H_i // 2, W_i // 2) twice
            features.append(x)
            indices.append(stage_indices)
        return FeatureMaps(features=features, pool_indices=indices, pool_input_sizes=sizes)

    def encode_sequence(self, images: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """images (B, 3, H, W) -> memory (B, h*w, C_last), mask (B, h*w) all True."""
        reject_lengths(lengths)
        return feature_map_to_sequence(self.encode_feature_maps(images).features[-1])

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a saved state dict of this encoder, or a torchvision VGG-BN one (``features.N.*``).

        A torchvision VGG state dict is mapped by order: its k-th conv and k-th BatchNorm go to
        this encoder's k-th block; its classifier is ignored.
        """
        self.load_state(load_weights_file(path), path)

    def load_state(self, state: Mapping[str, Tensor], origin: str | os.PathLike) -> None:
        """``load_weights`` of a state dict read from ``origin`` (named in errors)."""
        own_keys = self.state_dict().keys()
        if not any(key in state for key in own_keys) and any(_VGG_FEATURE_KEY.match(key) for key in state):
            state = self._from_vgg_features(state, origin)
        load_state_dict_checked(self, state, origin)

    def _from_vgg_features(self, state: Mapping[str, Tensor], path: str | os.PathLike) -> dict[str, Tensor]:
        layers: dict[int, dict[str, Tensor]] = {}
        for key, value in state.items():
            match = _VGG_FEATURE_KEY.match(key)
            if match:
                layers.setdefault(int(match.group(1)), {})[match.group(2)] = value
        ordered = [layers[index] for index in sorted(layers)]
        convs = [layer for layer in ordered if "weight" in layer and layer["weight"].dim() == 4]
        norms = [layer for layer in ordered if "running_mean" in layer]
        blocks = [f"stages.{s}.{b}." for s, stage in enumerate(self.stages) for b in range(len(stage))]
        if len(convs) != len(blocks) or len(norms) != len(blocks):
            raise WeightsError(
                f"weights file {path} holds {len(convs)} conv and {len(norms)} BatchNorm layers under "
                f"'features.', this encoder needs {len(blocks)} of each"
            )
        mapped: dict[str, Tensor] = {}
        for prefix, conv, norm in zip(blocks, convs, norms, strict=True):
            mapped.update({f"{prefix}0.{name}": value for name, value in conv.items()})
            mapped.update({f"{prefix}1.{name}": value for name, value in norm.items()})
        return mapped


def _with_weights(encoder: SegNetEncoder, pretrained_path: str | None) -> SegNetEncoder:
    if pretrained_path is not None:
        encoder.load_weights(pretrained_path)
    return encoder


def _with_vgg16_bn_weights(encoder: SegNetEncoder, pretrained: bool | str) -> SegNetEncoder:
    """``encoder`` with torchvision's VGG16-BN weights (True, or the name of a ``VGG16_BN_Weights`` member)."""
    names = [member.name for member in VGG16_BN_Weights]
    if pretrained is not True and pretrained not in names:
        raise WeightsError(f"segnet_vgg16: encoder_args.pretrained must be true or one of {names}, got {pretrained!r}")
    weights = VGG16_BN_Weights.DEFAULT if pretrained is True else VGG16_BN_Weights[pretrained]
    state, encoder.pretrained_weights = torchvision_state_dict(weights)
    encoder.load_state(state, encoder.pretrained_weights.name)
    return encoder


_SEGNET_EMITS = {Emits.FEATURE_MAPS, Emits.POOL_INDICES, Emits.SEQUENCE}


@register_encoder("segnet_vgg16", modality=Modality.IMAGE, emits=_SEGNET_EMITS)
def segnet_vgg16(
    channels: Sequence[int] = VGG16_CHANNELS,
    in_channels: int = 3,
    pretrained_path: str | None = None,
    pretrained: bool | str = False,
) -> SegNetEncoder:
    """SegNet's encoder: the 13 conv layers of VGG16-BN in 5 stages (2, 2, 3, 3, 3), reductions 2..32.

    ``channels`` (5 widths) can be shrunk for tests; ``pretrained_path`` reads torchvision's
    ``vgg16_bn`` state dict (or this encoder's own) from a local file; ``pretrained`` (True) torchvision's
    ImageNet weights through ``$TORCH_HOME/hub/checkpoints`` (``encoders.pretrained``).
    """
    check_pretrained(pretrained, pretrained_path)
    encoder = SegNetEncoder(channels, VGG16_STAGE_DEPTHS, VGG_KERNEL_SIZE, in_channels, conv_bias=True)
    if pretrained is not False:
        return _with_vgg16_bn_weights(encoder, pretrained)
    return _with_weights(encoder, pretrained_path)


@register_encoder("segnet_basic", modality=Modality.IMAGE, emits=_SEGNET_EMITS)
def segnet_basic(
    channels: int = BASIC_CHANNELS,
    kernel_size: int = BASIC_KERNEL_SIZE,
    num_stages: int = BASIC_NUM_STAGES,
    in_channels: int = 3,
    pretrained_path: str | None = None,
) -> SegNetEncoder:
    """SegNet-Basic: ``num_stages`` (4) stages of one 7x7 conv with 64 channels (no bias) + BN + ReLU."""
    encoder = SegNetEncoder((channels,) * num_stages, (1,) * num_stages, kernel_size, in_channels)
    return _with_weights(encoder, pretrained_path)
