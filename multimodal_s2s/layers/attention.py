"""Multi-head attention over ``torch.nn.functional.scaled_dot_product_attention`` and a KV cache.

Shapes: B batch, L query length, T memory (key) length, D model width, H heads, Dh = D / H.
Keys and values travel together as one tensor ``(2, B, H, T, Dh)`` (index 0 keys, 1 values),
so that one copy writes, and one ``index_select`` reorders, both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multimodal_s2s.layers.masks import to_padding_mask

#: Growth of a KVCache beyond what is asked, in positions, so that most steps write in place.
KV_CAPACITY_MARGIN = 64


def attention_bias(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """mask (B, T) bool, True = valid -> additive bias (B, T): 0 on valid rows, -inf on padded rows."""
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill_(to_padding_mask(mask), float("-inf"))


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, L, D) -> (B, H, L, Dh), a view."""
    batch, length, dim = x.shape
    return x.view(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, L, Dh) -> (B, L, H * Dh)."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


def attention_weights(query: Tensor, keys: Tensor, bias: Tensor | None = None) -> Tensor:
    """The explicit path: softmax(q k^T / sqrt(Dh) + bias) as (B, H, L, T); SDPA does not return it.

    query (B, H, L, Dh), keys (B, H, T, Dh), bias broadcastable to (B, H, L, T).
    """
    scores = torch.matmul(query, keys.transpose(-2, -1)) * query.shape[-1] ** -0.5  # (B, H, L, T)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention, with or without a KV buffer of earlier positions."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"model width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, kv_buffer: Tensor | None = None, start: int = 0) -> Tensor:
        """x (B, L, D) at positions start .. start+L-1 -> (B, L, D).

        kv_buffer (2, B, H, capacity, Dh), when given, holds the keys/values of positions
        < start; this call writes those of its own positions into it, in place.
        """
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, dim // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, L, Dh)
        query, key_values = qkv[0], qkv[1:]
        mask = None
        if kv_buffer is not None:
            end = start + length
            kv_buffer[:, :, :, start:end] = key_values
            key_values = kv_buffer[:, :, :, :end]  # (2, B, H, end, Dh)
            if start > 0 and length > 1:  # new queries see every earlier position and their own prefix
                mask = torch.ones(length, end, dtype=torch.bool, device=x.device).tril_(diagonal=start)
        attended = F.scaled_dot_product_attention(
            query,
            key_values[0],
            key_values[1],
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask is None and start == 0 and length > 1,
        )
        return self.out(merge_heads(attended))


class CrossAttention(nn.Module):
    """Multi-head attention from queries (B, L, D) to memory keys/values projected once per input."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"model width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def project_memory(self, memory: Tensor) -> Tensor:
        """memory (B, T, D) -> keys/values (2, B, H, T, Dh)."""
        batch, length, dim = memory.shape
        key_values = self.key_value(memory).view(batch, length, 2, self.num_heads, dim // self.num_heads)
        return key_values.permute(2, 0, 3, 1, 4)

    def forward(
        self, x: Tensor, memory_kv: Tensor, bias: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """x (N, L, D), memory_kv (2, B, H, T, Dh), bias (B, 1, 1, T) from ``attention_bias`` (None:
        every memory row is valid) -> (N, L, D) and, when ``need_weights``, the weights (N, H, L, T)
        (0 on padded rows). Queries attending to their own rows (``project_memory(x)``) is
        bidirectional self-attention.

        N = B * g: the g consecutive rows of an example (its beams) share its keys/values; their
        queries are attended together as g * L query positions of that example.
        """
        group = x.shape[0] // memory_kv.shape[1]
        query = group_queries(split_heads(self.query(x), self.num_heads), group)  # (B, H, g*L, Dh)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            weights = attention_weights(query, memory_kv[0], bias)  # (B, H, g*L, T)
            attended = torch.matmul(F.dropout(weights, dropout_p, self.training), memory_kv[1])
            weights = ungroup_queries(weights, group)
        else:
            attended = F.scaled_dot_product_attention(
                query, memory_kv[0], memory_kv[1], attn_mask=bias, dropout_p=dropout_p
            )
        return self.out(merge_heads(ungroup_queries(attended, group))), weights


def group_queries(query: Tensor, group: int) -> Tensor:
    """(B*g, H, L, X) -> (B, H, g*L, X): the g rows of an example as one row of g*L queries."""
    if group == 1:
        return query
    rows, heads, length, width = query.shape
    return (
        query.view(rows // group, group, heads, length, width).transpose(1, 2).reshape(-1, heads, group * length, width)
    )


def ungroup_queries(x: Tensor, group: int) -> Tensor:
    """(B, H, g*L, X) -> (B*g, H, L, X), the inverse of ``group_queries``."""
    if group == 1:
        return x
    examples, heads, grouped, width = x.shape
    return (
        x.view(examples, heads, group, grouped // group, width)
        .transpose(1, 2)
        .reshape(-1, heads, grouped // group, width)
    )


@dataclass
class KVCache:
    """Self-attention keys/values of a stack of layers, preallocated and written in place.

    ``buffers[i]`` (2, B, H, capacity, Dh) holds layer i's positions [0, length). A step calls
    ``reserve(L_new)``, lets each layer write its new positions into its buffer, then
    ``advance(L_new)``. Writing in place beats ``torch.cat`` per step, which copies the whole
    past every time. One buffer per layer rather than one stacked tensor: on CPU, allocations
    above glibc's mmap threshold (32 MiB) page-fault afresh on every reorder, several times slower.
    """

    buffers: list[Tensor]
    length: int = 0

    @classmethod
    def allocate(cls, num_layers: int, batch: int, num_heads: int, head_dim: int, capacity: int, like: Tensor):
        """An empty cache with room for ``capacity`` positions and a margin, on the device and dtype of ``like``."""
        shape = (2, batch, num_heads, capacity + KV_CAPACITY_MARGIN, head_dim)
        return cls([like.new_empty(shape) for _ in range(num_layers)])

    @property
    def capacity(self) -> int:
        return self.buffers[0].shape[3]

    def reserve(self, count: int) -> None:
        """Make room for ``count`` more positions (grows, copying the filled part, when needed)."""
        needed = self.length + count
        if needed > self.capacity:
            self.buffers = [self._copy_filled(buffer, needed + KV_CAPACITY_MARGIN) for buffer in self.buffers]

    def advance(self, count: int) -> None:
        self.length += count

    def reorder(self, index: Tensor) -> KVCache:
        """A new cache with batch rows ``index`` (B',) long and the same capacity; only the filled
        positions are copied (one ``index_select`` per layer straight into the new buffer)."""
        return KVCache([self._copy_filled(buffer, self.capacity, index) for buffer in self.buffers], self.length)

    def _copy_filled(self, buffer: Tensor, capacity: int, index: Tensor | None = None) -> Tensor:
        """A new (2, B', H, capacity, Dh) buffer holding positions [0, length) of ``buffer`` (rows ``index``)."""
        _, batch, heads, _, head_dim = buffer.shape
        rows = batch if index is None else index.shape[0]
        copied = buffer.new_empty((2, rows, heads, capacity, head_dim))
        filled, target = buffer[:, :, :, : self.length], copied[:, :, :, : self.length]
        if index is None:
            target.copy_(filled)
        else:
            torch.index_select(filled, 1, index, out=target)
        return copied
