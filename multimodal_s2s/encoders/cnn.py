"""CNN image encoders over any timm CNN (weights by name through timm, see encoders/pretrained.py, or from a
local file, see encoders/weights.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from timm.layers import AvgPool2dSame, Conv2dSame, ScaledStdConv2dSame, StdConv2dSame
from timm.layers.pool2d_same import MaxPool2dSame
from torch import Tensor, nn

from multimodal_s2s.encoders.base import Encoder
from multimodal_s2s.encoders.pretrained import check_pretrained, create_timm_model
from multimodal_s2s.encoders.weights import load_state_dict_checked, load_weights_file
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.image_positions import feature_map_to_sequence
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Grid, Modality, Rounding, SequenceOutput

#: Layers that pad to TensorFlow's "same" at run time: ceil(side / stride) cells.
_SAME_PADDED = (Conv2dSame, StdConv2dSame, ScaledStdConv2dSame, AvgPool2dSame, MaxPool2dSame)


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
                downloaded into or read from the huggingface_hub cache (``encoders.pretrained``).
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
        reductions = tuple(self.backbone.feature_info.reduction())
        rounding = strided_rounding(self.backbone)
        self.position_scale, self.position_channels = position_scale, position_channels
        self.info = EncoderInfo(
            modality=Modality.IMAGE,
            emits=frozenset({Emits.SEQUENCE, Emits.FEATURE_MAPS}),
            out_dim=channels[-1] + position_channels,
            channels=channels,
            reductions=reductions,
            grid=None if rounding is None else Grid(reductions[-1], rounding),
        )

    def encode_feature_maps(self, images: Tensor) -> FeatureMaps:
        """images (B, 3, H, W) -> the maps of every stage, shallow to deep."""
        return FeatureMaps(features=list(self.backbone(images)))

    def encode_sequence(self, images: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """images (B, 3, H, W) -> memory (B, h*w, C_last + position_channels), mask (B, h*w) all True."""
        reject_lengths(lengths)
        return feature_map_to_sequence(self.backbone(images)[-1], self.position_scale, self.position_channels)


def strided_rounding(network: nn.Module) -> Rounding | None:
    """How ``network``'s convolutions and pools count an image side that their strides do not divide, read
    from their kernel, stride, padding and dilation: CEIL when each keeps ceil(side / stride) (it pads
    dilation * (kernel - 1) / 2, or to "same" at run time), FLOOR when each keeps floor(side / stride) (an
    unpadded window as wide as its stride), EXACT when both kinds are there, None when one keeps neither
    (e.g. an unpadded 3x3 stride-2 convolution)."""
    kinds = {_layer_rounding(layer) for layer in network.modules() if isinstance(layer, _SIZED_LAYERS)} - {_KEPT}
    if None in kinds:
        return None
    if len(kinds) > 1:
        return Rounding.EXACT
    return kinds.pop() if kinds else Rounding.CEIL  # no strided layer: any rounding is exact


_SIZED_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_KEPT = "kept"  # a stride-1 layer that keeps the size


def _layer_rounding(layer: nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) -> Rounding | str | None:
    """The rounding of one layer. PyTorch's size formula: out = round((side + c) / stride) + 1 with
    c = 2 * padding - dilation * (kernel - 1) - 1, rounded down (up for a ``ceil_mode`` pool)."""
    if isinstance(layer, _SAME_PADDED):
        return Rounding.CEIL
    if layer.padding == "same":  # PyTorch pads to "same" at stride 1 only
        return _KEPT
    ceil_mode = not isinstance(layer, nn.Conv2d) and layer.ceil_mode
    dilation = (1, 1) if isinstance(layer, nn.AvgPool2d) else _pair(layer.dilation)
    padding = (0, 0) if layer.padding == "valid" else _pair(layer.padding)
    kinds = set()
    sides = zip(_pair(layer.kernel_size), _pair(layer.stride), padding, dilation, strict=True)
    for kernel, stride, pad, dilate in sides:
        c = 2 * pad - dilate * (kernel - 1) - 1
        if stride == 1:
            kinds.add(_KEPT if c == -1 else None)
        elif c == -stride:
            kinds.add(Rounding.CEIL if ceil_mode else Rounding.FLOOR)
        else:
            kinds.add(Rounding.CEIL if c == -1 and not ceil_mode else None)
    return kinds.pop() if len(kinds) == 1 else None


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


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
