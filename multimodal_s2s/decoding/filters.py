"""Logit filters: small composable callables ``filter(logits, tokens) -> logits``.

``logits`` (N, V) are the next-token scores of N rows (examples or beams), ``tokens`` (N, L) each
row's prefix so far (BOS first). A filter returns new logits (never edits its input) where banned
tokens are ``-inf``. Two groups are applied by the search code:

- constraints (``SuppressTokens``, ``NoRepeatNGram``) shape the distribution that scores are computed
  from: log-probabilities are the log-softmax of the constrained logits (``constrained_log_probs``; or, in
  a beam search without ``renormalize``, the constraints applied to log-probabilities, as HF's beam search);
- sampling filters (``Temperature``, ``TopK``, ``TopP``) shape only the distribution that the next
  token is drawn from; reported scores stay those of the constrained distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from multimodal_s2s.decoding.options import DecodingOptions
from multimodal_s2s.types import BOS_ID, EOS_ID, PAD_ID

NEG_INF = float("-inf")
#: Tokens a decoder must never emit: padding, and BOS (decoding starts from it).
NEVER_GENERATED = (PAD_ID, BOS_ID)


class LogitFilter(Protocol):
    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        """logits (N, V), tokens (N, L) -> filtered logits (N, V)."""
        ...


class SuppressTokens:
    """Ban fixed token ids everywhere."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = torch.tensor(sorted(set(token_ids)), dtype=torch.long)

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        if self.token_ids.device != logits.device:
            self.token_ids = self.token_ids.to(logits.device)
        return logits.index_fill(1, self.token_ids, NEG_INF)


class SuppressAtStart:
    """Ban ``token_ids`` at the first step only (tokens hold BOS alone): whisper's ``SuppressBlank``."""

    def __init__(self, token_ids: Sequence[int]):
        self.suppress = SuppressTokens(token_ids)

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        return self.suppress(logits, tokens) if tokens.shape[1] == 1 else logits


class MinLength:
    """Ban EOS until the output has ``min_length`` tokens (tokens hold BOS + the output so far)."""

    def __init__(self, min_length: int):
        self.min_length = min_length

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        if tokens.shape[1] - 1 >= self.min_length:
            return logits
        return logits.index_fill(1, torch.tensor([EOS_ID], device=logits.device), NEG_INF)


class EndAtMaxLength:
    """At the last of ``max_length`` steps, ban every token but EOS (tokens hold BOS + the output so far)."""

    def __init__(self, max_length: int):
        self.max_length = max_length

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        if tokens.shape[1] < self.max_length:
            return logits
        only_eos = torch.full_like(logits, NEG_INF)
        only_eos[:, EOS_ID] = 0.0  # log-probability 0 whether applied to logits or to log-probabilities
        return only_eos


class NoRepeatNGram:
    """Ban every token that would complete an n-gram already present in the row's prefix (vectorized)."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"n-gram size must be >= 1, got {n}")
        self.n = n

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        n, (rows, length) = self.n, tokens.shape
        if length < n:
            return logits
        windows = tokens.unfold(1, n, 1)  # (N, W, n): every n-gram of the prefix
        last = tokens[:, length - n + 1 :].unsqueeze(1)  # (N, 1, n-1): the tail an n-gram would extend
        repeats = (windows[:, :, : n - 1] == last).all(-1)  # (N, W): n-grams that begin like the tail
        vocab = logits.shape[1]
        # Non-repeating windows point at a spare column V, dropped afterwards.
        banned_ids = torch.where(repeats, windows[:, :, n - 1], vocab)  # (N, W)
        banned = torch.zeros(rows, vocab + 1, dtype=torch.bool, device=logits.device)
        banned.scatter_(1, banned_ids, True)
        return logits.masked_fill(banned[:, :vocab], NEG_INF)


class Temperature:
    """Divide logits by a temperature > 0 (higher = flatter)."""

    def __init__(self, temperature: float):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        return logits / self.temperature


class TopK:
    """Keep the k highest logits of each row."""

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        self.k = k

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        k = min(self.k, logits.shape[1])
        kth_best = logits.topk(k, dim=1).values[:, -1:]  # (N, 1)
        return logits.masked_fill(logits < kth_best, NEG_INF)


class TopP:
    """Nucleus filter: keep the smallest set of most probable tokens whose probability reaches p."""

    def __init__(self, p: float):
        if not 0 < p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {p}")
        self.p = p

    def __call__(self, logits: Tensor, tokens: Tensor) -> Tensor:
        sorted_logits, order = logits.sort(dim=1, descending=True)  # (N, V)
        probs = sorted_logits.softmax(dim=1)
        mass_before = probs.cumsum(dim=1) - probs  # (N, V): probability of the better tokens
        drop_sorted = mass_before >= self.p  # the best token always stays (mass_before 0)
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # back to vocabulary order
        return logits.masked_fill(drop, NEG_INF)


def apply_filters(filters: Sequence[LogitFilter], logits: Tensor, tokens: Tensor) -> Tensor:
    """Apply ``filters`` in order: logits (N, V), tokens (N, L) -> (N, V)."""
    for logit_filter in filters:
        logits = logit_filter(logits, tokens)
    return logits


def constrained_log_probs(
    constraints: Sequence[LogitFilter], logits: Tensor, tokens: Tensor, renormalize: bool
) -> Tensor:
    """logits (N, V), tokens (N, L) -> log-probabilities (N, V) under ``constraints`` (``constraint_filters``):
    the log-softmax of the constrained logits; without ``renormalize`` the other constraints are applied after the
    log-softmax of logits where only the first (the never-generated and suppressed ids) applied, so the tokens
    they ban take their probability with them (HF's beam search: its logits processors run after log_softmax)."""
    if renormalize:
        return apply_filters(constraints, logits, tokens).log_softmax(dim=-1)
    return apply_filters(constraints[1:], constraints[0](logits, tokens).log_softmax(dim=-1), tokens)


def constraint_filters(options: DecodingOptions) -> list[LogitFilter]:
    """Filters that every search applies before computing log-probabilities; the first suppresses ids."""
    filters: list[LogitFilter] = [SuppressTokens((*NEVER_GENERATED, *options.suppress_tokens))]
    if options.suppress_at_start:
        filters.append(SuppressAtStart(options.suppress_at_start))
    if options.min_length > 0:
        filters.append(MinLength(options.min_length))
    if options.no_repeat_ngram_size > 0:
        filters.append(NoRepeatNGram(options.no_repeat_ngram_size))
    if options.end_at_max_length:
        filters.append(EndAtMaxLength(options.max_length))
    return filters


def sampling_filters(options: DecodingOptions) -> list[LogitFilter]:
    """Filters that shape the sampling distribution (temperature, then top-k, then top-p)."""
    filters: list[LogitFilter] = [Temperature(options.temperature)]
    if options.top_k is not None:
        filters.append(TopK(options.top_k))
    if options.top_p is not None:
        filters.append(TopP(options.top_p))
    return filters
