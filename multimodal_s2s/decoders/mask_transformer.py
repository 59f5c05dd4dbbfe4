"""Segmenter's mask Transformer (Strudel, Garcia, Laptev and Schmid, ICCV 2021) as a dense decoder.

K learnable class embeddings are processed jointly with the encoder's patch tokens by a few pre-LN
Transformer blocks (bidirectional self-attention over patches + classes, the suite's SDPA attention).
The masks are the scalar products of the L2-normalized projected patch and class embeddings, (B, K, h, w)
after a LayerNorm over the classes: the decoder's features are these per-class scores at its own stride
(``makes_class_scores``), which ``SegmentationHead`` (``decoders.dense``) only upsamples to the input size.
The classes are inside the decoder (they attend to the patches and to each other), not in a classifier
after it: that is what keeps ``class_attention``.

Built from ``EncoderInfo`` alone: it reads the deepest feature map (a ViT's patch grid, a CNN's last
stage) as h*w tokens of width ``channels[-1]``, projected to ``d_model``, with fixed 2-D sinusoidal
positions added (so that grids without positions of their own, CNN maps, are located too).
``class_attention`` returns the last block's attention of each class embedding over the patches as
per-class maps (B, K, h, w), for heatmaps like the captioning demo's per-word maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s.layers.attention import CrossAttention
from multimodal_s2s.layers.image_positions import grid_positions_2d
from multimodal_s2s.registry import register_decoder
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps

DEFAULT_NUM_LAYERS = 2
HEAD_WIDTH = 64  # default heads: d_model // 64, as in ViT and Segmenter
FF_RATIO = 4


class MaskTransformerBlock(nn.Module):
    """Pre-LN block: bidirectional self-attention over all tokens, then an MLP; each a residual."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = CrossAttention(d_model, num_heads, dropout)
        self.mlp_norm = nn.LayerNorm(d_model)
        ff_dim = FF_RATIO * d_model
        self.mlp = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D) -> (B, T, D) and, when asked, the attention weights (B, H, T, T)."""
        normed = self.attention_norm(x)
        attended, weights = self.attention(normed, self.attention.project_memory(normed), need_weights=need_weights)
        x = x + self.dropout(attended)
        return x + self.dropout(self.mlp(self.mlp_norm(x))), weights


@register_decoder(
    "mask_transformer", requires={Emits.FEATURE_MAPS}, output="dense", class_attention=True, makes_class_scores=True
)
class MaskTransformerDecoder(nn.Module):
    """Deepest feature map (B, C, h, w) -> class masks (B, K, h, w), its features."""


    def __init__(
        self,
        encoder_info: EncoderInfo,
        num_classes: int,
        d_model: int | None = None,
        num_layers: int = DEFAULT_NUM_LAYERS,
        num_heads: int | None = None,
        dropout: float = 0.0,
    ):
        """
        Args:
            encoder_info: the encoder's declaration; ``channels[-1]`` is the width of its tokens,
                ``reductions[-1]`` the stride of the masks.
            num_classes: K, one learnable class embedding each.
            d_model: the decoder width (None: the encoder's token width, as in Segmenter).
            num_layers: Transformer blocks (Segmenter uses 2).
            num_heads: attention heads (None: d_model // 64, at least 1).
            dropout: in attention, MLP and residuals.
        """
        super().__init__()
        if not encoder_info.channels or Emits.FEATURE_MAPS not in encoder_info.emits or not encoder_info.reductions:
            raise ValueError(
                "the mask_transformer decoder needs an encoder that declares feature-map channels and reductions"
            )
        if num_layers < 1:
            raise ValueError(f"the mask_transformer decoder needs num_layers >= 1, got {num_layers}")
        in_width = encoder_info.channels[-1]
        d_model = d_model or in_width
        num_heads = num_heads or max(1, d_model // HEAD_WIDTH)
        self.num_classes = self.out_channels = num_classes
        self.out_reduction = encoder_info.reductions[-1]
        self.input_projection = nn.Linear(in_width, d_model)
        self.class_embeddings = nn.Parameter(torch.randn(1, num_classes, d_model) * d_model**-0.5)
        self.blocks = nn.ModuleList(MaskTransformerBlock(d_model, num_heads, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.patch_projection = nn.Linear(d_model, d_model, bias=False)
        self.class_projection = nn.Linear(d_model, d_model, bias=False)
        self.mask_norm = nn.LayerNorm(num_classes)

    def forward(self, maps: FeatureMaps, output_size: Sequence[int]) -> Tensor:
        """maps from the encoder -> class masks (B, K, h, w) over the deepest grid (h, w).

        ``output_size`` (the dense-decoder signature) is not needed: the head upsamples the masks."""
        masks, _ = self._masks(maps, need_weights=False)
        return masks

    def class_attention(self, maps: FeatureMaps) -> Tensor:
        """Per-class attention maps (B, K, h, w) over the deepest grid (h, w).

        Row k is the last block's attention of class embedding k over the h*w patches (mean over
        heads), renormalized over the patches: each map sums to 1 (the weight a class embedding puts
        on the other class embeddings is left out).
        """
        _, weights = self._masks(maps, need_weights=True)
        batch, _, height, width = maps.features[-1].shape
        patches = height * width
        over_patches = weights.mean(1)[:, patches:, :patches]  # (B, K, h*w)
        over_patches = over_patches / over_patches.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
        return over_patches.reshape(batch, self.num_classes, height, width)

    def _masks(self, maps: FeatureMaps, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        """-> masks (B, K, h, w) and, when asked, the last block's weights (B, H, h*w + K, h*w + K)."""
        grid = maps.features[-1]  # (B, C, h, w)
        batch, _, height, width = grid.shape
        patches = self.input_projection(grid.flatten(2).transpose(1, 2))  # (B, h*w, D)
        patches = patches + grid_positions_2d(height, width, patches.shape[-1], grid.device).to(patches.dtype)
        x = torch.cat([patches, self.class_embeddings.expand(batch, -1, -1)], dim=1)  # (B, h*w + K, D)
        weights = None
        for index, block in enumerate(self.blocks):
            x, weights = block(x, need_weights=need_weights and index == len(self.blocks) - 1)
        x = self.final_norm(x)
        patch_rows, class_rows = x[:, : height * width], x[:, height * width :]
        patch_rows = F.normalize(self.patch_projection(patch_rows), dim=-1)  # (B, h*w, D)
        class_rows = F.normalize(self.class_projection(class_rows), dim=-1)  # (B, K, D)
        masks = self.mask_norm(patch_rows @ class_rows.transpose(1, 2))  # (B, h*w, K)
        return masks.transpose(1, 2).reshape(batch, self.num_classes, height, width), weights
