"""The typed contract between encoders and decoders.

Shapes: B batch, T memory length, D model width, C channels, H/W spatial sizes.
One mask convention everywhere: ``True`` means valid. The only conversion to
PyTorch's ``key_padding_mask`` (True means pad) is ``layers.masks.to_padding_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import Tensor

# Offered here too, as every model module reads them from ``types``.
from multimodal_s2s.tokenizers.special import BOS_ID as BOS_ID
from multimodal_s2s.tokenizers.special import EOS_ID as EOS_ID
from multimodal_s2s.tokenizers.special import PAD_ID as PAD_ID
from multimodal_s2s.tokenizers.special import SPECIAL_TOKENS as SPECIAL_TOKENS
from multimodal_s2s.tokenizers.special import UNK_ID as UNK_ID

#: The CTC head's blank: the padding id, which is never a target (``models.ctc``, ``speech.word_timing``).
CTC_BLANK_ID = PAD_ID


class Emits(str, Enum):
    """What an encoder can hand to a decoder."""

    SEQUENCE = "sequence"  # SequenceOutput.memory + mask
    FINAL_STATE = "final_state"  # SequenceOutput.final_state (recurrent encoders)
    FEATURE_MAPS = "feature_maps"  # FeatureMaps.features
    POOL_INDICES = "pool_indices"  # FeatureMaps.pool_indices (SegNet encoders)


class DecoderOutput(str, Enum):
    """What a decoder makes (declared in its registry entry)."""

    TEXT = "text"  # token logits, step by step: an EncoderDecoder
    DENSE = "dense"  # class logits per pixel: a SegmentationModel


class Rounding(str, Enum):
    """How a grid counts the cells of an image side that is not a multiple of its reduction."""

    CEIL = "ceil"  # every strided layer pads (kernel - 1) / 2: ceil(side / stride) (ResNets)
    FLOOR = "floor"  # unpadded windows as wide as their stride: floor(side / stride) (2x2 pools, patches)
    EXACT = "exact"  # layers of both kinds: the grid is known for multiples of the reduction only


@dataclass(frozen=True)
class Grid:
    """Memory rows that are the cells of a grid over the image, in row-major order.

    Attributes:
        reduction: input pixels per cell along each side (a CNN's deepest reduction, a ViT's patch size).
        rounding: how a side that is not a multiple of ``reduction`` is counted.
    """

    reduction: int
    rounding: Rounding

    def size(self, image_size: tuple[int, int]) -> tuple[int, int] | None:
        """(h, w): the cells of the grid for images of ``image_size`` (H, W), h * w memory rows; None when
        the rounding is EXACT and a side is not a multiple of the reduction."""
        height, width = image_size
        if self.rounding == Rounding.EXACT and (height % self.reduction or width % self.reduction):
            return None
        if self.rounding == Rounding.CEIL:
            return -(-height // self.reduction), -(-width // self.reduction)
        return height // self.reduction, width // self.reduction


class Modality(str, Enum):
    """What an encoder reads.

    IMAGE: float (B, 3, H, W). AUDIO: log-mel float (B, n_mels, frames) + lengths (B,).
    TEXT: token ids long (B, L) + lengths (B,).
    """

    IMAGE = "image"
    AUDIO = "audio"
    TEXT = "text"


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder emits, declared before any forward pass (like timm's feature_info).

    Attributes:
        modality: the input it reads.
        emits: the outputs it can produce.
        out_dim: D of ``SequenceOutput.memory`` (None when it emits no sequence).
        channels: C_i of each feature map, shallow to deep (empty when no maps).
        reductions: input size / H_i of each feature map (same order as channels).
        state_dim: width of ``SequenceOutput.final_state`` (None when absent).
        stage_depths: conv layers in each stage that produced a feature map, for decoders
            that mirror their encoder (SegNet); empty when the encoder does not say.
        n_mels: what an audio encoder's input needs: the mel bins of its log-mel features
            (None for other modalities).
        frames_per_row: for an encoder whose memory rows are consecutive time steps of its
            input frames, the frames per row (an audio encoder's time subsampling): what aligns
            output tokens to time; None when rows are not one per time step (AST patches).
        grid: for an image encoder whose memory rows are the cells of a grid over the image, that
            grid (its size for any image size: ``grid.size``), onto which attention over the memory maps;
            None when the rows are no such grid (audio, text, or a CNN whose strides it cannot tell).
    """

    modality: Modality
    emits: frozenset[Emits]
    out_dim: int | None = None
    channels: tuple[int, ...] = ()
    reductions: tuple[int, ...] = ()
    state_dim: int | None = None
    stage_depths: tuple[int, ...] = ()
    n_mels: int | None = None
    frames_per_row: int | None = None
    grid: Grid | None = None


@dataclass
class SequenceOutput:
    """What a text decoder attends to.

    Attributes:
        memory: (B, T, D) rows to attend over.
        mask: (B, T) bool, True = valid row.
        final_state: (B, S) the fixed context vector of a recurrent encoder, or None.
    """

    memory: Tensor
    mask: Tensor
    final_state: Tensor | None = None

    def context_vector(self) -> Tensor:
        """(B, S or D): the final state if the encoder has one, else the masked mean of memory."""
        if self.final_state is not None:
            return self.final_state
        weights = self.mask.unsqueeze(-1).to(self.memory.dtype)  # (B, T, 1)
        return (self.memory * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def repeat_interleave(self, repeats: int) -> SequenceOutput:
        """Each example repeated ``repeats`` times along the batch: (B*repeats, ...)."""
        state = self.final_state
        return SequenceOutput(
            memory=self.memory.repeat_interleave(repeats, 0),
            mask=self.mask.repeat_interleave(repeats, 0),
            final_state=None if state is None else state.repeat_interleave(repeats, 0),
        )


@dataclass
class FeatureMaps:
    """What a dense decoder upsamples.

    Attributes:
        features: [(B, C_i, H_i, W_i)] shallow to deep, as declared by EncoderInfo.channels.
        pool_indices: for SegNet encoders, the max-pool indices that produced each map
            (same order as ``features``), else None.
        pool_input_sizes: the (H, W) each pooling saw, so that unpooling restores odd sizes.
    """

    features: list[Tensor]
    pool_indices: list[Tensor] | None = None
    pool_input_sizes: list[torch.Size] | None = field(default=None)
