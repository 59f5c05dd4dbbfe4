"""Transformer text decoder (pre-LN, Vaswani et al. 2017; post-LN as an option) with an explicit KV cache.

Implements the protocol of ``decoders.base``: ``forward`` (teacher forcing) and ``step``
(incremental decoding; self-attention keys/values are kept in a preallocated ``KVCache``,
cross-attention keys/values are projected from the memory once, on the first step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from multimodal_s2s.decoders.base import StepOutput
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.activations import activation as activation_module
from multimodal_s2s.layers.attention import CrossAttention, KVCache, SelfAttention, attention_bias
from multimodal_s2s.layers.positional import check_token_range, positional_encoding, token_embedding
from multimodal_s2s.registry import register_decoder
from multimodal_s2s.types import Emits, EncoderInfo, SequenceOutput

DEFAULT_DROPOUT = 0.1
#: Rows of a learned position table by default (whisper's n_text_ctx).
MAX_POSITIONS = 448


def check_tokens(tokens: Tensor, batch: int | None = None) -> None:
    """Raise InputError unless tokens are integer (B, L) with B, L >= 1 (and B == batch when given)."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.is_floating_point() or tokens.is_complex():
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise InputError(f"decoder tokens must be integer ids of shape (B, L), got {shape}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise InputError(f"decoder tokens must be non-empty, got shape {tuple(tokens.shape)}")
    if batch is not None and tokens.shape[0] != batch:
        raise InputError(f"decoder tokens have batch size {tokens.shape[0]}, the memory or cache has {batch}")


def rows_per_example(tokens: Tensor, examples: int) -> int:
    """g for decoder tokens (N, L) over the memory of ``examples`` examples: N = examples * g, rows
    n*g .. n*g + g - 1 belong to example n (beam search steps g = K beams per example). InputError otherwise."""
    check_tokens(tokens)
    if examples == 0:
        raise InputError("encoded memory is empty: 0 examples")
    if tokens.shape[0] % examples:
        raise InputError(
            f"decoder tokens have {tokens.shape[0]} rows, not a multiple of the {examples} examples of the memory"
        )
    return tokens.shape[0] // examples


def check_encoded(encoded: SequenceOutput, dim: int) -> None:
    """Raise InputError unless encoded.memory is (B, T, dim) with a (B, T) bool mask, each row with a valid entry."""
    memory, mask = encoded.memory, encoded.mask
    if memory.dim() != 3 or memory.shape[-1] != dim:
        raise InputError(f"encoded memory must be (B, T, {dim}), got shape {tuple(memory.shape)}")
    if mask.dtype != torch.bool or mask.shape != memory.shape[:2]:
        raise InputError(f"encoded mask must be bool {tuple(memory.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
    if memory.shape[0] == 0 or memory.shape[1] == 0:
        raise InputError(f"encoded memory is empty: shape {tuple(memory.shape)}")
    if not bool(mask.any(dim=1).all()):
        raise InputError("encoded mask has an example with no valid memory row")


@dataclass
class TransformerCache:
    """Decoder state between steps, for N = B * g token rows over the memory of B examples.

    Attributes:
        self_kv: self-attention keys/values of every layer, N rows, written in place by ``step``.
        cross_kv: per layer (2, B, H, T, Dh), the cross-attention keys/values, projected once and
            shared by the g rows of an example (beams do not copy the memory).
        memory_bias: (B, 1, 1, T) additive mask of the memory rows (-inf on padding).
        rows_per_example: g.
    """

    self_kv: KVCache
    cross_kv: list[Tensor]
    memory_bias: Tensor
    rows_per_example: int = 1

    @property
    def length(self) -> int:
        """Positions decoded so far."""
        return self.self_kv.length

    @property
    def rows(self) -> int:
        """N, the token rows."""
        return self.self_kv.buffers[0].shape[1]

    def reorder(self, index: Tensor) -> TransformerCache:
        """A new cache with token rows ``index`` (N',) long, in that order; ``self`` is left untouched.

        Any index is right. One that keeps every row within its example (beam search) keeps the
        shared cross-attention keys/values as they are; any other (rows moved across examples,
        rows dropped) gives every row its own copy of its example's keys/values and mask.
        """
        examples = torch.div(index, self.rows_per_example, rounding_mode="floor")  # (N',)
        same_rows = torch.arange(self.rows, device=index.device) // self.rows_per_example
        if index.shape[0] == self.rows and torch.equal(examples, same_rows):
            return TransformerCache(self.self_kv.reorder(index), self.cross_kv, self.memory_bias, self.rows_per_example)
        cross_kv = [key_values.index_select(1, examples) for key_values in self.cross_kv]
        return TransformerCache(self.self_kv.reorder(index), cross_kv, self.memory_bias.index_select(0, examples))


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to memory, MLP; each a residual. Pre-LN (each sub-layer reads
    the normalized input) or, with ``normalize_before=False``, post-LN (each residual sum is normalized)."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ff_dim: int,
        dropout: float,
        normalize_before: bool = True,
        activation: str = "gelu",
    ):
        super().__init__()
        self.normalize_before = normalize_before
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attention = SelfAttention(d_model, num_heads, dropout)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attention = CrossAttention(d_model, num_heads, dropout)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ff_dim), activation_module(activation), nn.Dropout(dropout), nn.Linear(ff_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        memory_kv: Tensor,
        memory_bias: Tensor,
        kv_buffer: Tensor | None = None,
        start: int = 0,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, L, D) -> (B, L, D) and the cross-attention weights (B, H, L, T) when asked."""
        if not self.normalize_before:
            x = self.self_norm(x + self.dropout(self.self_attention(x, kv_buffer, start)))
            attended, weights = self.cross_attention(x, memory_kv, memory_bias, need_weights)
            x = self.cross_norm(x + self.dropout(attended))
            return self.mlp_norm(x + self.dropout(self.mlp(x))), weights
        x = x + self.dropout(self.self_attention(self.self_norm(x), kv_buffer, start))
        attended, weights = self.cross_attention(self.cross_norm(x), memory_kv, memory_bias, need_weights)
        x = x + self.dropout(attended)
        return x + self.dropout(self.mlp(self.mlp_norm(x))), weights


class TransformerDecoder(nn.Module):
    """Token embedding (scaled by sqrt(d_model)) + sinusoidal positions, pre-LN blocks, final
    LayerNorm, output projection (tied to the embedding when ``tie_embeddings``).

    Memory of width ``encoder_info.out_dim`` is projected to ``d_model`` when they differ. Options for
    Marian's layout (``interop.marian``): ``normalize_before=False`` (post-LN blocks), ``final_norm=False``
    (no LayerNorm after the last block), ``scale_embedding=False`` (embeddings times 1), ``activation``
    (gelu, relu, swish) and ``output_bias`` (a bias on the output projection: Marian's final-logits bias).
    Options for whisper's (``interop.whisper``): ``positions="learned"`` (a table of ``max_positions`` rows)
    and ``prompt``: token ids read after BOS at the start of every sequence (whisper's language, task and
    no-timestamps tokens), in training and decoding alike; their outputs are dropped, so the output at BOS
    predicts the first token after the prompt, and callers never see it. Options for BART's
    (``interop.bart``): ``embed_norm`` (a LayerNorm on the embedded tokens plus positions, BART's
    ``layernorm_embedding``), with learned positions, post-LN blocks and a prompt (its forced ``<s>``).
    """

    def __init__(
        self,
        encoder_info: EncoderInfo,
        vocab_size: int,
        d_model: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_dim: int = 1024,
        dropout: float = DEFAULT_DROPOUT,
        tie_embeddings: bool = True,
        normalize_before: bool = True,
        final_norm: bool = True,
        scale_embedding: bool = True,
        activation: str = "gelu",
        output_bias: bool = False,
        positions: str = "sinusoidal",
        max_positions: int = MAX_POSITIONS,
        prompt: Sequence[int] = (),
        embed_norm: bool = False,
    ):
        super().__init__()
        if any(not 0 <= token < vocab_size for token in prompt):
            raise ValueError(f"prompt ids {list(prompt)} must be in 0..{vocab_size - 1}")
        if encoder_info.out_dim is None or Emits.SEQUENCE not in encoder_info.emits:
            raise ValueError(f"the transformer decoder needs an encoder that emits a sequence, got {encoder_info}")
        self.memory_dim = encoder_info.out_dim
        self.vocab_size = vocab_size
        self.num_heads = num_heads
        self.embed_scale = math.sqrt(d_model) if scale_embedding else 1.0
        self.memory_projection = nn.Linear(self.memory_dim, d_model) if self.memory_dim != d_model else nn.Identity()
        self.embedding = token_embedding(vocab_size, d_model)
        self.positions = positional_encoding(positions, d_model, max_positions)
        self.embed_norm = nn.LayerNorm(d_model) if embed_norm else nn.Identity()
        self.register_buffer("prompt", torch.tensor(list(prompt), dtype=torch.long), persistent=False)
        self.embed_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            DecoderBlock(d_model, num_heads, ff_dim, dropout, normalize_before, activation) for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if final_norm else nn.Identity()
        self.output = nn.Linear(d_model, vocab_size, bias=output_bias)
        if output_bias:
            nn.init.zeros_(self.output.bias)
        if tie_embeddings:
            self.output.weight = self.embedding.weight

    def _embed(self, tokens: Tensor, offset: int) -> Tensor:
        """tokens (B, L) at positions offset .. offset+L-1 -> (B, L, D)."""
        return self.embed_dropout(self.embed_norm(self.positions(self.embedding(tokens) * self.embed_scale, offset)))

    def _with_prompt(self, tokens: Tensor) -> Tensor:
        """tokens (B, L) starting with BOS -> (B, L + P): the prompt inserted after BOS."""
        if not len(self.prompt):
            return tokens
        prompt = self.prompt.to(tokens.device).expand(tokens.shape[0], -1)
        return torch.cat([tokens[:, :1], prompt, tokens[:, 1:]], dim=1)

    def _memory(self, encoded: SequenceOutput) -> tuple[Tensor, Tensor]:
        """-> memory (B, T, D) in the model width and its bias (B, 1, 1, T)."""
        check_encoded(encoded, self.memory_dim)
        memory = self.memory_projection(encoded.memory)
        return memory, attention_bias(encoded.mask, memory.dtype)[:, None, None, :]

    def forward(self, tokens: Tensor, encoded: SequenceOutput) -> Tensor:
        """Teacher forcing: tokens (B, L) -> logits (B, L, V); position i sees tokens[:, :i+1]."""
        check_tokens(tokens, encoded.memory.shape[0])
        check_token_range(tokens, self.vocab_size)
        memory, memory_bias = self._memory(encoded)
        x = self._embed(self._with_prompt(tokens), 0)
        for block in self.blocks:
            x, _ = block(x, block.cross_attention.project_memory(memory), memory_bias)
        return self.output(self.final_norm(x[:, len(self.prompt) :]))

    def start_cache(self, encoded: SequenceOutput, length: int, rows_per_example: int = 1) -> TransformerCache:
        """An empty cache for ``rows_per_example`` token rows per example of ``encoded``, with room for
        ``length`` positions (it grows when needed)."""
        memory, memory_bias = self._memory(encoded)
        cross_kv = [block.cross_attention.project_memory(memory) for block in self.blocks]
        rows, head_dim = memory.shape[0] * rows_per_example, memory.shape[-1] // self.num_heads
        self_kv = KVCache.allocate(len(self.blocks), rows, self.num_heads, head_dim, length, memory)
        return TransformerCache(self_kv, cross_kv, memory_bias, rows_per_example)

    def step(
        self,
        tokens: Tensor,
        encoded: SequenceOutput,
        cache: TransformerCache | None = None,
        return_attention: bool = False,
    ) -> StepOutput:
        """tokens (N, L_new) after the cached positions -> logits (N, L_new, V).

        ``cache=None`` starts from scratch (``encoded`` is read only then); N may be a multiple
        g of the B examples of ``encoded`` (see ``rows_per_example``), whose memory the g rows of
        an example then share. The cache is updated in place and returned; ``cache.reorder``
        gives an independent copy. ``attention``: (N, L_new, T) cross-attention of the last
        block, mean over heads. A new cache starts with BOS: the prompt follows it (outputs not returned).
        """
        skipped = 0
        if cache is None:
            group = rows_per_example(tokens, encoded.memory.shape[0])
            check_token_range(tokens, self.vocab_size)
            tokens, skipped = self._with_prompt(tokens), len(self.prompt)
            cache = self.start_cache(encoded, tokens.shape[1], group)
        else:
            check_tokens(tokens, cache.rows)
        start, new = cache.self_kv.length, tokens.shape[1]
        cache.self_kv.reserve(new)
        x = self._embed(tokens, start)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, weights = block(
                x, cache.cross_kv[i], cache.memory_bias, cache.self_kv.buffers[i], start, return_attention and i == last
            )
        cache.self_kv.advance(new)
        attention = weights.mean(dim=1)[:, skipped:] if return_attention else None
        return StepOutput(self.output(self.final_norm(x[:, skipped:])), cache, attention)


@register_decoder("transformer", requires={Emits.SEQUENCE}, output="text", attends=True)
def transformer(
    encoder_info: EncoderInfo,
    *,
    vocab_size: int,
    d_model: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    ff_dim: int = 1024,
    dropout: float = DEFAULT_DROPOUT,
    tie_embeddings: bool = True,
    normalize_before: bool = True,
    final_norm: bool = True,
    scale_embedding: bool = True,
    activation: str = "gelu",
    output_bias: bool = False,
    positions: str = "sinusoidal",
    max_positions: int = MAX_POSITIONS,
    prompt: Sequence[int] = (),
    embed_norm: bool = False,
) -> TransformerDecoder:
    """Any size; the defaults are those of ``transformer_small``; the layout options are TransformerDecoder's."""
    return TransformerDecoder(
        encoder_info, vocab_size, d_model, num_layers, num_heads, ff_dim, dropout, tie_embeddings,
        normalize_before, final_norm, scale_embedding, activation, output_bias, positions, max_positions, prompt,
        embed_norm,
    )


@register_decoder("transformer_tiny", requires={Emits.SEQUENCE}, output="text", attends=True)
def transformer_tiny(
    encoder_info: EncoderInfo, *, vocab_size: int, dropout: float = DEFAULT_DROPOUT, tie_embeddings: bool = True
) -> TransformerDecoder:
    """d_model 64, 2 layers, 4 heads, MLP 128."""
    return TransformerDecoder(encoder_info, vocab_size, 64, 2, 4, 128, dropout, tie_embeddings)


@register_decoder("transformer_small", requires={Emits.SEQUENCE}, output="text", attends=True)
def transformer_small(
    encoder_info: EncoderInfo, *, vocab_size: int, dropout: float = DEFAULT_DROPOUT, tie_embeddings: bool = True
) -> TransformerDecoder:
    """d_model 256, 4 layers, 4 heads, MLP 1024."""
    return TransformerDecoder(encoder_info, vocab_size, 256, 4, 4, 1024, dropout, tie_embeddings)


@register_decoder("transformer_base", requires={Emits.SEQUENCE}, output="text", attends=True)
def transformer_base(
    encoder_info: EncoderInfo, *, vocab_size: int, dropout: float = DEFAULT_DROPOUT, tie_embeddings: bool = True
) -> TransformerDecoder:
    """d_model 512, 6 layers, 8 heads, MLP 2048 (Vaswani et al. 2017, base)."""
    return TransformerDecoder(encoder_info, vocab_size, 512, 6, 8, 2048, dropout, tie_embeddings)
