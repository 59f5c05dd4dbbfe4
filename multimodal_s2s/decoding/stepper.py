"""Drive a text model one token at a time over N rows: their prefixes, decoder cache and attention."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from multimodal_s2s.decoders.base import DecoderCache, StepOutput
from multimodal_s2s.types import BOS_ID, PAD_ID, SequenceOutput


class TextModel(Protocol):
    """What decoding needs from a model (EncoderDecoder offers it)."""

    vocab_size: int

    def encode(self, inputs: Tensor, lengths: Tensor | None = None) -> SequenceOutput: ...

    def step(
        self, tokens: Tensor, encoded: SequenceOutput, cache: DecoderCache | None = None, return_attention: bool = False
    ) -> StepOutput: ...


class TokenStepper:
    """N = B * g rows decoded in lockstep from BOS: g rows per example of ``encoded`` (B examples).

    Holds ``tokens`` (N, max_length + 1): BOS then the tokens appended so far, PAD beyond; the decoder
    cache (when ``use_cache``); and ``attention`` (N, max_length, T): row i of a prefix is the
    cross-attention of the step that predicted token i + 1 (None until a step returns attention).
    """

    def __init__(
        self,
        model: TextModel,
        encoded: SequenceOutput,
        max_length: int,
        use_cache: bool,
        return_attention: bool,
        rows_per_example: int = 1,
    ):
        self.model, self.encoded = model, encoded
        self.use_cache, self.return_attention = use_cache, return_attention
        rows, device = encoded.memory.shape[0] * rows_per_example, encoded.memory.device
        self.tokens = torch.full((rows, max_length + 1), PAD_ID, dtype=torch.long, device=device)
        self.tokens[:, 0] = BOS_ID
        self.length = 1  # filled positions of ``tokens``
        self.cache: DecoderCache | None = None
        self.attention: Tensor | None = None

    @property
    def prefix(self) -> Tensor:
        """(N, length): BOS and the tokens so far."""
        return self.tokens[:, : self.length]

    @property
    def generated(self) -> int:
        """Tokens appended after BOS."""
        return self.length - 1

    def next_logits(self) -> Tensor:
        """(N, V) float32 scores of the token after the current prefix; records its attention."""
        if self.use_cache:
            new_token = self.tokens[:, self.length - 1 : self.length]  # (N, 1)
            output = self.model.step(new_token, self.encoded, self.cache, return_attention=self.return_attention)
            self.cache = output.cache
        else:
            output = self.model.step(self.prefix, self.encoded, None, return_attention=self.return_attention)
        if self.length == 1:
            self._check_logits(output.logits)
        if self.return_attention and output.attention is not None:
            self._record_attention(output.attention[:, -1])
        return output.logits[:, -1].float()

    def append(self, next_tokens: Tensor) -> None:
        """next_tokens (N,) long become position ``length`` of every row."""
        self.tokens[:, self.length] = next_tokens
        self.length += 1

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (N,) long, in that order: prefixes, attention and cache."""
        self.tokens[:, : self.length] = self.tokens[index, : self.length]
        if self.attention is not None:  # filled up to the step just taken: ``length`` rows
            self.attention[:, : self.length] = self.attention[index, : self.length]
        if self.cache is not None:
            self.cache = self.cache.reorder(index)

    def _record_attention(self, weights: Tensor) -> None:
        """weights (N, T) of the current step."""
        if self.attention is None:
            rows, max_length = self.tokens.shape[0], self.tokens.shape[1] - 1
            self.attention = weights.new_zeros(rows, max_length, weights.shape[-1])
        self.attention[:, self.length - 1] = weights

    def _check_logits(self, logits: Tensor) -> None:
        rows, vocab = self.tokens.shape[0], self.model.vocab_size
        if logits.dim() != 3 or logits.shape[0] != rows or logits.shape[2] != vocab:
            raise ValueError(
                f"model.step returned logits of shape {tuple(logits.shape)}, expected ({rows}, L_new, {vocab})"
            )
