"""Checks that a decoded window is plausible, and whisper's fallback when it is not.

whisper's checks (``transcribe.decode_with_fallback``) with their defaults, each off when None:

- compression ratio: ``len(text bytes) / len(zlib-compressed bytes)`` above 2.4 means looping text;
- average log-probability: ``log P(tokens + EOS) / (tokens + 1)`` below -1.0 means an unsure decoding;
- no-speech probability (here: the decoder's probability of EOS as its first token, i.e. of an empty
  transcript, where the caller can compute it) above 0.6, together with a low average log-probability,
  means silence: the window is dropped, not re-decoded;

and one of ours: the same n-gram (n <= 4) of words, or of tokens, repeated back to back more than 4 times
(tokens catch a character model's loops inside a word, "aaaaaaaaaa", which compress too little to fail
the compression ratio in a short window).

``decode_with_fallback`` decodes a batch of windows at temperature 0 (greedy or the beam), re-decodes the
windows that fail a check by sampling at rising temperatures (0.2, 0.4, ... 1.0; the best of
``best_of`` samples by average log-probability), and empties those that still fail after the last one (no
text, no tokens: dropped, but told apart from silence) or keeps their last decoding when ``drop_failed`` is
False, as whisper does.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch
from torch import Tensor

from multimodal_s2s.decoding import DecodingOptions, DecodingResult
from multimodal_s2s.decoding.stepper import TextModel
from multimodal_s2s.tokenizers import Tokenizer
from multimodal_s2s.types import BOS_ID, EOS_ID, SequenceOutput

WHISPER_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MAX_NGRAM = 4
#: whisper's defaults (``transcribe``), and ours for repeated n-grams.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
MAX_NGRAM_REPEATS = 4
BEST_OF = 5
Window = TypeVar("Window")


@dataclass(frozen=True)
class WindowDecoding:
    """One window's decoding and what the checks read.

    Attributes:
        text: the detokenized transcript.
        tokens: its token ids (no BOS / EOS).
        avg_logprob: summed log-probability (EOS included) / (tokens + 1).
        no_speech_prob: the probability of an empty transcript, or None when unknown.
        temperature: the temperature it was decoded at.
    """

    text: str
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float | None = None
    temperature: float = 0.0

    @classmethod
    def from_result(
        cls, result: DecodingResult, tokenizer: Tokenizer, no_speech_prob: float | None = None, temperature: float = 0.0
    ) -> WindowDecoding:
        average = result.log_prob / (len(result.tokens) + 1)
        return cls(tokenizer.decode(result.tokens), list(result.tokens), average, no_speech_prob, temperature)

    @property
    def compression_ratio(self) -> float:
        return compression_ratio(self.text)


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of ``check``; None turns a check off."""

    compression_ratio: float | None = COMPRESSION_RATIO_THRESHOLD
    logprob: float | None = LOGPROB_THRESHOLD
    no_speech: float | None = NO_SPEECH_THRESHOLD
    max_ngram_repeats: int | None = MAX_NGRAM_REPEATS


@dataclass(frozen=True)
class FallbackPolicy:
    """``temperatures``: tried in order (0 = the given options: greedy or the beam; > 0 = sampling);
    ``best_of``: samples per temperature > 0; ``drop_failed``: drop a window that fails every try."""

    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    temperatures: tuple[float, ...] = WHISPER_TEMPERATURES
    best_of: int = BEST_OF
    drop_failed: bool = True

    def __post_init__(self) -> None:
        if not self.temperatures or any(not (math.isfinite(t) and t >= 0) for t in self.temperatures):
            raise ValueError(f"temperatures must be finite numbers >= 0, got {self.temperatures}")
        if self.best_of < 1:
            raise ValueError(f"best_of must be >= 1, got {self.best_of}")


def compression_ratio(text: str) -> float:
    """UTF-8 bytes / zlib-compressed bytes (whisper's measure of repetitive text); 0 for empty text."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def longest_ngram_repeat(words: Sequence[object], max_n: int = MAX_NGRAM) -> int:
    """The most times any n-gram (n <= max_n) occurs back to back: "a b a b a b" -> 3, "a b c" -> 1."""
    best = 1 if words else 0
    for n in range(1, max_n + 1):
        for start in range(len(words) - n):
            count = 1
            while words[start + count * n : start + (count + 1) * n] == words[start : start + n]:
                count += 1
            best = max(best, count)
    return best


def is_silence(decoding: WindowDecoding, thresholds: QualityThresholds) -> bool:
    """whisper's no-speech rule: the empty transcript is likely and the decoding is unsure."""
    if thresholds.no_speech is None or decoding.no_speech_prob is None:
        return False
    unsure = thresholds.logprob is None or decoding.avg_logprob < thresholds.logprob
    return decoding.no_speech_prob > thresholds.no_speech and unsure


def failed_checks(decoding: WindowDecoding, thresholds: QualityThresholds) -> list[str]:
    """The names of the checks ``decoding`` fails (empty: plausible)."""
    failed = []
    if thresholds.compression_ratio is not None and decoding.compression_ratio > thresholds.compression_ratio:
        failed.append("compression_ratio")
    if thresholds.logprob is not None and decoding.avg_logprob < thresholds.logprob:
        failed.append("logprob")
    if thresholds.max_ngram_repeats is not None:
        loops = max(longest_ngram_repeat(decoding.text.split()), longest_ngram_repeat(decoding.tokens))
        if loops > thresholds.max_ngram_repeats:
            failed.append("ngram_repeats")
    return failed


def decode_with_fallback(
    windows: Sequence[Window],
    decode_batch: Callable[[Sequence[Window], DecodingOptions], list[WindowDecoding]],
    options: DecodingOptions,
    policy: FallbackPolicy | None = None,
) -> list[WindowDecoding | None]:
    """Decode ``windows`` with ``decode_batch(windows, options)`` (one WindowDecoding per window) under the
    fallback policy: one result per window, None for a window dropped as silence; for one failing every try
    its last decoding, emptied (no text, no tokens) when the policy drops failures."""
    policy = policy or FallbackPolicy()
    results: list[WindowDecoding | None] = [None] * len(windows)
    pending = list(range(len(windows)))
    for attempt, temperature in enumerate(policy.temperatures):
        if not pending:
            break
        chosen = _decode_at(windows, pending, decode_batch, options, temperature, policy.best_of)
        last_try = attempt == len(policy.temperatures) - 1
        still_failing = []
        for index, decoding in zip(pending, chosen, strict=True):
            silent = is_silence(decoding, policy.thresholds)
            if silent or not failed_checks(decoding, policy.thresholds):
                results[index] = None if silent else decoding
            elif last_try:
                results[index] = replace(decoding, text="", tokens=[]) if policy.drop_failed else decoding
            else:
                still_failing.append(index)
        pending = still_failing
    return results


def _decode_at(
    windows: Sequence[Window],
    indices: list[int],
    decode_batch: Callable[[Sequence[Window], DecodingOptions], list[WindowDecoding]],
    options: DecodingOptions,
    temperature: float,
    best_of: int,
) -> list[WindowDecoding]:
    """Windows ``indices`` decoded at ``temperature``: the given options at 0, else the best of ``best_of``
    samples of each by average log-probability."""
    subset = [windows[index] for index in indices]
    if temperature == 0:
        return [replace(d, temperature=0.0) for d in decode_batch(subset, options)]
    sampling = replace(options, beam_size=1, n_best=1, temperature=temperature, length_penalty=0.0)
    seeds = [None if options.seed is None else options.seed + sample for sample in range(best_of)]  # distinct draws
    candidates = [decode_batch(subset, replace(sampling, seed=seed)) for seed in seeds]  # (best_of, len(subset))
    best = [max(samples, key=lambda d: d.avg_logprob) for samples in zip(*candidates, strict=True)]
    return [replace(d, temperature=temperature) for d in best]


@torch.no_grad()
def no_speech_probabilities(model: TextModel, encoded: SequenceOutput) -> Tensor:
    """(B,) the decoder's probability of EOS right after BOS (an empty transcript) for each window of
    ``encoded`` (B, T, D): one decoder step."""
    batch = encoded.memory.shape[0]
    bos = torch.full((batch, 1), BOS_ID, dtype=torch.long, device=encoded.memory.device)
    logits = model.step(bos, encoded, None).logits[:, -1].float()  # (B, V)
    return logits.softmax(dim=-1)[:, EOS_ID]
