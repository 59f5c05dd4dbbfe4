"""Vision Transformer encoders over timm's VisionTransformer, for any image size divisible by the patch."""

from __future__ import annotations

from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor

from multimodal_s2s.encoders.base import Encoder
from multimodal_s2s.encoders.cnn import reject_lengths
from multimodal_s2s.encoders.weights import load_state_dict_checked, load_weights_file
from multimodal_s2s.errors import InputError
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Modality, SequenceOutput

DEFAULT_IMG_SIZE = 224
DEFAULT_PATCH_SIZE = 16


class ViTEncoder(Encoder):
    """timm VisionTransformer (``dynamic_img_size``), as patch tokens and as the patch grid.

    ``encode_sequence``: images (B, 3, H, W) -> memory (B, (H/p)*(W/p), D): the patch tokens after
    the final norm, without class/register tokens, in row-major grid order, so that attention
    weights map onto the patch grid; mask all True.
    ``encode_feature_maps``: the same tokens as one map (B, D, H/p, W/p), reduction p.
    """

    def __init__(
        self,
        img_size: int = DEFAULT_IMG_SIZE,
        patch_size: int = DEFAULT_PATCH_SIZE,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        pretrained_path: str | None = None,
        **vit_kwargs: Any,
    ):
        """
        Args:
            img_size: the size the position table is made for; other sizes divisible by
                ``patch_size`` work too (positions are interpolated).
            pretrained_path: local timm ViT weights; its head is ignored and its position
                table resampled to ``img_size`` when it was made for another size.
            vit_kwargs: passed on to timm's VisionTransformer (mlp_ratio, reg_tokens, ...).
        """
        super().__init__()
        self.patch_size = patch_size
        self.vit = VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            num_classes=0,
            global_pool="",
            dynamic_img_size=True,
            **vit_kwargs,
        )
        if pretrained_path is not None:
            state = checkpoint_filter_fn(load_weights_file(pretrained_path), self.vit)
            load_state_dict_checked(self.vit, state, pretrained_path)
        self.info = EncoderInfo(
            modality=Modality.IMAGE,
            emits=frozenset({Emits.SEQUENCE, Emits.FEATURE_MAPS}),
            out_dim=embed_dim,
            channels=(embed_dim,),
            reductions=(patch_size,),
        )

    def _patch_tokens(self, images: Tensor) -> tuple[Tensor, int, int]:
        """images (B, 3, H, W) -> tokens (B, h*w, D) after the final norm, grid height h, width w."""
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise InputError(
                f"image height and width must be divisible by the patch size {self.patch_size}, got {height}x{width}"
            )
        tokens = self.vit.forward_features(images)  # (B, prefix + h*w, D)
        return tokens[:, self.vit.num_prefix_tokens :], height // self.patch_size, width // self.patch_size

    def encode_sequence(self, images: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """images (B, 3, H, W) -> memory (B, h*w, D), mask (B, h*w) all True."""
        reject_lengths(lengths)
        tokens, _, _ = self._patch_tokens(images)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return SequenceOutput(memory=tokens, mask=mask)

    def encode_feature_maps(self, images: Tensor) -> FeatureMaps:
        """images (B, 3, H, W) -> FeatureMaps([(B, D, H/p, W/p)])."""
        tokens, grid_height, grid_width = self._patch_tokens(images)
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid_height, grid_width)
        return FeatureMaps(features=[grid])


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
