"""Vision Transformer encoders over timm's VisionTransformer, for any image size divisible by the patch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor

from multimodal_s2s.encoders.base import Encoder
from multimodal_s2s.encoders.cnn import reject_lengths
from multimodal_s2s.encoders.pretrained import check_pretrained, create_timm_model
from multimodal_s2s.encoders.weights import WeightsError, load_state_dict_checked, load_weights_file
from multimodal_s2s.errors import InputError
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Grid, Modality, Rounding, SequenceOutput

DEFAULT_IMG_SIZE = 224
DEFAULT_PATCH_SIZE = 16


DEFAULT_NUM_FEATURE_MAPS = 4
#: timm's ViT architectures with ImageNet weights, by (patch size, embed dim, depth, heads).
TIMM_VITS = {
    (16, 192, 12, 3): "vit_tiny_patch16_224",
    (16, 384, 12, 6): "vit_small_patch16_224",
    (16, 768, 12, 12): "vit_base_patch16_224",
    (32, 384, 12, 6): "vit_small_patch32_224",
    (32, 768, 12, 12): "vit_base_patch32_224",
}


def evenly_spaced_blocks(depth: int, count: int = DEFAULT_NUM_FEATURE_MAPS) -> tuple[int, ...]:
    """``min(count, depth)`` block indices (0-based), evenly spaced and ending at the last block.

    depth 12 -> (2, 5, 8, 11), as DPT and ViTDet take a ViT-B's blocks 3, 6, 9, 12.
    """
    count = min(count, depth)
    return tuple(round((k + 1) * depth / count) - 1 for k in range(count))


class ViTEncoder(Encoder):
    """timm VisionTransformer (``dynamic_img_size``), as patch tokens and as patch grids of several blocks.

    ``encode_sequence``: images (B, 3, H, W) -> memory (B, (H/p)*(W/p), D): the patch tokens after
    the final norm, without class/register tokens, in row-major grid order, so that attention
    weights map onto the patch grid; mask all True.
    ``encode_feature_maps``: the patch tokens of each of ``feature_blocks`` (after the final norm)
    as maps [(B, D, H/p, W/p)], all at reduction p; the last is the last block's, the same tokens
    as ``encode_sequence``.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = DEFAULT_IMG_SIZE,
        patch_size: int = DEFAULT_PATCH_SIZE,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        pretrained_path: str | None = None,
        feature_blocks: Sequence[int] | None = None,
        pretrained: bool | str = False,
        **vit_kwargs: Any,
    ):
        """
        Args:
            img_size: the size (side, or (H, W)) the position table is made for; other sizes divisible by
                ``patch_size`` work too (positions are interpolated).
            pretrained_path: local timm ViT weights; its head is ignored and its position
                table resampled to ``img_size`` when it was made for another size.
            feature_blocks: the blocks (0-based, increasing, the last one ``depth - 1``) whose
                outputs are the feature maps (None: up to 4 evenly spaced, ``evenly_spaced_blocks``).
            pretrained: True: timm's default weights of the architecture of these dims (``TIMM_VITS``); a tag
                (e.g. "augreg_in21k_ft_in1k"): those weights; through the huggingface_hub cache
                (``encoders.pretrained``), the position table resampled to ``img_size``.
            vit_kwargs: passed on to timm's VisionTransformer (mlp_ratio, reg_tokens, ...).
        """
        super().__init__()
        self.patch_size = patch_size
        self.feature_blocks = _checked_blocks(feature_blocks, depth)
        check_pretrained(pretrained, pretrained_path)
        vit_kwargs.update(img_size=img_size, num_classes=0, global_pool="", dynamic_img_size=True)
        if pretrained is False:
            self.vit = VisionTransformer(
                patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads, **vit_kwargs
            )
        else:
            self.vit, self.pretrained_weights = create_timm_model(
                _timm_vit(patch_size, embed_dim, depth, num_heads), pretrained, **vit_kwargs
            )
        if pretrained_path is not None:
            state = checkpoint_filter_fn(load_weights_file(pretrained_path), self.vit)
            load_state_dict_checked(self.vit, state, pretrained_path)
        self.info = EncoderInfo(
            modality=Modality.IMAGE,
            emits=frozenset({Emits.SEQUENCE, Emits.FEATURE_MAPS}),
            out_dim=embed_dim,
            channels=(embed_dim,) * len(self.feature_blocks),
            reductions=(patch_size,) * len(self.feature_blocks),
            grid=Grid(patch_size, Rounding.FLOOR),  # sides are multiples of the patch (``_check_size``)
        )

    def _check_size(self, images: Tensor) -> None:
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise InputError(
                f"image height and width must be divisible by the patch size {self.patch_size}, got {height}x{width}"
            )

    def encode_sequence(self, images: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """images (B, 3, H, W) -> memory (B, h*w, D) after the final norm, mask (B, h*w) all True."""
        reject_lengths(lengths)
        self._check_size(images)
        tokens = self.vit.forward_features(images)[:, self.vit.num_prefix_tokens :]  # (B, h*w, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return SequenceOutput(memory=tokens, mask=mask)

    def encode_feature_maps(self, images: Tensor) -> FeatureMaps:
        """images (B, 3, H, W) -> FeatureMaps([(B, D, H/p, W/p)] one per feature block)."""
        self._check_size(images)
        maps = self.vit.forward_intermediates(
            images, indices=list(self.feature_blocks), norm=True, stop_early=True, intermediates_only=True
        )  # [(B, D, h, w)]
        return FeatureMaps(features=list(maps))


def _timm_vit(patch_size: int, embed_dim: int, depth: int, num_heads: int) -> str:
    """The timm architecture of these dims, or WeightsError: pretrained weights exist for those only."""
    dims = (patch_size, embed_dim, depth, num_heads)
    if dims not in TIMM_VITS:
        known = ", ".join(f"{name} {key}" for key, name in TIMM_VITS.items())
        raise WeightsError(
            f"no timm weights for a ViT of (patch_size, embed_dim, depth, num_heads) {dims}; pretrained needs one of: "
            f"{known}"
        )
    return TIMM_VITS[dims]


def _checked_blocks(feature_blocks: Sequence[int] | None, depth: int) -> tuple[int, ...]:
    """The feature blocks, or ValueError unless they increase strictly and end at the last block."""
    if feature_blocks is None:
        return evenly_spaced_blocks(depth)
    blocks = tuple(int(block) for block in feature_blocks)
    increasing = all(a < b for a, b in zip(blocks, blocks[1:], strict=False))
    if not blocks or not increasing or blocks[0] < 0 or blocks[-1] != depth - 1:
        raise ValueError(
            f"feature_blocks must increase from >= 0 to the last block {depth - 1}, got {list(feature_blocks)}"
        )
    return blocks


_VIT_EMITS = {Emits.SEQUENCE, Emits.FEATURE_MAPS}


@register_encoder("vit_tiny", modality=Modality.IMAGE, emits=_VIT_EMITS)
def vit_tiny(**kwargs: Any) -> ViTEncoder:
    """ViT-Ti/16 (embed 192, depth 12, heads 3); e.g. ``depth=1, embed_dim=32, num_heads=2`` for fast tests."""
    return ViTEncoder(**{"embed_dim": 192, "depth": 12, "num_heads": 3, **kwargs})


@register_encoder("vit_small", modality=Modality.IMAGE, emits=_VIT_EMITS)
def vit_small(**kwargs: Any) -> ViTEncoder:
    """ViT-S/16 (embed 384, depth 12, heads 6)."""
    return ViTEncoder(**{"embed_dim": 384, "depth": 12, "num_heads": 6, **kwargs})


@register_encoder("vit_base", modality=Modality.IMAGE, emits=_VIT_EMITS)
def vit_base(**kwargs: Any) -> ViTEncoder:
    """ViT-B/16 (embed 768, depth 12, heads 12)."""
    return ViTEncoder(**{"embed_dim": 768, "depth": 12, "num_heads": 12, **kwargs})
