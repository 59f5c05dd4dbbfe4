"""Base class and input checks shared by all encoders.

An encoder sets ``self.info`` (an EncoderInfo) in ``__init__`` and implements
``encode_sequence`` if it emits Emits.SEQUENCE and ``encode_feature_maps`` if it
emits Emits.FEATURE_MAPS. Models call only the method the decoder needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.positional import check_token_range
from multimodal_s2s.types import EncoderInfo, Modality

if TYPE_CHECKING:
    from multimodal_s2s.encoders.pretrained import PretrainedWeights


class Encoder(nn.Module):
    """An encoder of one modality.

    Subclasses set ``info`` in ``__init__`` and implement what it declares:
    ``encode_sequence(inputs, lengths=None) -> SequenceOutput`` for Emits.SEQUENCE,
    ``encode_feature_maps(images) -> FeatureMaps`` for Emits.FEATURE_MAPS.
    """

    info: EncoderInfo
    #: What weights loaded by name expect of the inputs (``encoders.pretrained``); None for all others.
    pretrained_weights: PretrainedWeights | None = None


def check_inputs(info: EncoderInfo, inputs: Tensor, lengths: Tensor | None) -> None:
    """Raise InputError with one clear sentence when inputs do not fit ``info.modality``.

    IMAGE: float (B, 3, H, W). AUDIO: float (B, n_mels, frames). TEXT: integer (B, L).
    ``lengths``: integer (B,), every entry in 1..size of the time axis.
    """
    if not isinstance(inputs, Tensor):
        raise InputError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    expected_dims = {Modality.IMAGE: 4, Modality.AUDIO: 3, Modality.TEXT: 2}[info.modality]
    layout = {Modality.IMAGE: "(B, 3, H, W)", Modality.AUDIO: "(B, n_mels, frames)", Modality.TEXT: "(B, L)"}
    if inputs.dim() != expected_dims:
        raise InputError(
            f"{info.modality.value} inputs must be {layout[info.modality]}, got shape {tuple(inputs.shape)}"
        )
    if inputs.shape[0] == 0:
        raise InputError("empty batch: inputs have batch size 0")
    if inputs.shape[-1] == 0 or (info.modality == Modality.IMAGE and inputs.shape[-2] == 0):
        raise InputError(f"inputs of length zero: shape {tuple(inputs.shape)}")
    if info.modality == Modality.TEXT:
        if inputs.dtype not in (torch.int64, torch.int32):
            raise InputError(f"text inputs must be integer token ids, got dtype {inputs.dtype}")
    elif not inputs.is_floating_point():
        raise InputError(f"{info.modality.value} inputs must be floating point, got dtype {inputs.dtype}")
    if info.modality == Modality.IMAGE and inputs.shape[1] != 3:
        raise InputError(f"image inputs must have 3 channels, got {inputs.shape[1]} (shape {tuple(inputs.shape)})")
    if info.n_mels is not None and inputs.shape[1] != info.n_mels:
        raise InputError(f"audio inputs must have {info.n_mels} mel bins, got {inputs.shape[1]}")
    if lengths is not None:
        check_lengths(lengths, inputs.shape[0], inputs.shape[-1])


def check_lengths(lengths: Tensor, batch: int, max_len: int) -> None:
    """Raise InputError unless lengths is an integer (batch,) tensor with entries in 1..max_len (one device sync).
    The entries are not read inside a ``torch.compile`` or ``torch.export`` graph (as ``check_token_range``)."""
    if lengths.dim() != 1 or lengths.shape[0] != batch or lengths.is_floating_point():
        raise InputError(f"lengths must be integer of shape ({batch},), got {lengths.dtype} {tuple(lengths.shape)}")
    if torch.compiler.is_compiling():
        return
    shortest, longest = torch.stack(torch.aminmax(lengths)).tolist()  # one device sync
    if shortest < 1:
        raise InputError(f"a sequence of length zero in the batch (lengths={lengths.tolist()})")
    if longest > max_len:
        raise InputError(f"lengths {lengths.tolist()} exceed the padded length {max_len}")


def check_token_ids(tokens: Tensor, lengths: Tensor, vocab_size: int) -> None:
    """Raise InputError unless tokens (B, L) hold ids in 0..vocab_size-1 and lengths fit them (see check_lengths)."""
    check_lengths(lengths, *tokens.shape)
    check_token_range(tokens, vocab_size)
