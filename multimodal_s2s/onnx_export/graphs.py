"""The two graphs of a text-out export, as PyTorch modules over a trained ``EncoderDecoder`` (Transformer decoder).

- ``EncoderGraph``: inputs (+ lengths) -> the cross-attention keys/values of every decoder layer and the memory
  bias, computed ONCE per input (the decoder graph never sees the memory, so no step can recompute them).
- ``StepGraph``: one cached decoding step. tokens (N, 1), position (), cross keys/values (layers, 2, B, H, T, Dh)
  and memory bias (B, T) of the B examples, and per layer i the past self-attention keys/values past_i
  (2, N, H, P, Dh) -> logits (N, V), the last layer's cross-attention (N, T) (mean over heads) and per layer
  present_i (2, N, H, P + 1, Dh). P = 0 is the first step; only the self-attention cache grows with the
  output. N = B * g: the g consecutive rows of an example (its beams) share its memory, as in
  ``CrossAttention`` (their queries attend together), so beams never copy the memory. One tensor per layer:
  stacking the layers would copy the whole cache once more at every step.

Both reuse the decoder's own layers (weights, norms, projections); ``StepGraph`` lays them out as
``DecoderBlock.forward`` does for one new position, with the explicit softmax so that the weights come out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multimodal_s2s.decoders.text_transformer import DecoderBlock, TransformerDecoder
from multimodal_s2s.layers.attention import (
    attention_bias,
    attention_weights,
    group_queries,
    merge_heads,
    split_heads,
    ungroup_queries,
)
from multimodal_s2s.layers.positional import sinusoidal_positions
from multimodal_s2s.models.encoder_decoder import EncoderDecoder


class EncoderGraph(nn.Module):
    """inputs (image (B, 3, H, W); audio features (B, n_mels, F) + lengths (B,); tokens (B, L) + lengths (B,))
    -> cross_kv (layers, 2, B, H, T, Dh) and memory_bias (B, T) (0 valid, -inf padding)."""

    def __init__(self, model: EncoderDecoder):
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder

    def forward(self, inputs: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        encoded = self.encoder.encode_sequence(inputs, lengths)
        memory = self.decoder.memory_projection(encoded.memory)  # (B, T, D)
        cross_kv = torch.stack([block.cross_attention.project_memory(memory) for block in self.decoder.blocks])
        return cross_kv, attention_bias(encoded.mask, memory.dtype)


class StepGraph(nn.Module):
    """One cached step of a ``TransformerDecoder`` (see the module docstring for the shapes)."""

    def __init__(self, decoder: TransformerDecoder):
        super().__init__()
        self.decoder = decoder
        self.dim = decoder.embedding.embedding_dim

    def forward(
        self, tokens: Tensor, position: Tensor, cross_kv: Tensor, memory_bias: Tensor, *past: Tensor
    ) -> tuple[Tensor, ...]:
        decoder = self.decoder
        x = decoder.embedding(tokens) * decoder.embed_scale  # (N, 1, D)
        x = x + sinusoidal_positions(position.reshape(1), self.dim).to(x.dtype)
        bias = memory_bias[:, None, None, :]  # (B, 1, 1, T)
        present, weights = [], None
        for i, block in enumerate(decoder.blocks):
            x, layer_kv, weights = _block_step(block, x, past[i], cross_kv[i], bias)
            present.append(layer_kv)
        logits = decoder.output(decoder.final_norm(x))[:, 0]  # (N, V)
        return logits, weights.mean(dim=1)[:, 0], *present


def _block_step(
    block: DecoderBlock, x: Tensor, past_kv: Tensor, cross_kv: Tensor, bias: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """x (N, 1, D), past_kv (2, N, H, P, Dh), cross_kv (2, B, H, T, Dh) -> x, present (2, N, H, P+1, Dh), weights
    (N, H, 1, T). Pre-LN or post-LN as the block is."""
    pre = block.normalize_before
    attended, present = _self_attention(block, block.self_norm(x) if pre else x, past_kv)
    x = x + attended if pre else block.self_norm(x + attended)
    attended, weights = _cross_attention(block, block.cross_norm(x) if pre else x, cross_kv, bias)
    x = x + attended if pre else block.cross_norm(x + attended)
    if pre:
        return x + block.mlp(block.mlp_norm(x)), present, weights
    return block.mlp_norm(x + block.mlp(x)), present, weights


def _self_attention(block: DecoderBlock, x: Tensor, past_kv: Tensor) -> tuple[Tensor, Tensor]:
    """The new position attends to the past and itself: no mask is needed for one query."""
    attention = block.self_attention
    rows, length, dim = x.shape
    qkv = attention.qkv(x).view(rows, length, 3, attention.num_heads, dim // attention.num_heads)
    qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, N, H, 1, Dh)
    present = torch.cat([past_kv, qkv[1:]], dim=3)  # (2, N, H, P+1, Dh)
    attended = F.scaled_dot_product_attention(qkv[0], present[0], present[1])
    return attention.out(merge_heads(attended)), present


def _cross_attention(block: DecoderBlock, x: Tensor, cross_kv: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """x (N, 1, D), cross_kv (2, B, H, T, Dh), bias (B, 1, 1, T) -> (N, 1, D), weights (N, H, 1, T)."""
    attention = block.cross_attention
    group = x.shape[0] // cross_kv.shape[1]
    query = group_queries(split_heads(attention.query(x), attention.num_heads), group)  # (B, H, g, Dh)
    weights = attention_weights(query, cross_kv[0], bias)  # (B, H, g, T)
    attended = ungroup_queries(torch.matmul(weights, cross_kv[1]), group)  # (N, H, 1, Dh)
    return attention.out(merge_heads(attended)), ungroup_queries(weights, group)
