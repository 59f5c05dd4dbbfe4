"""Greedy decoding on an exported model, numpy alone: the suite's ``decoding.greedy`` step for step (the same
constraints, scores and attention), so that the tokens are PyTorch's. Beam search: ``onnx_runtime.beam``.

Options: any object with the fields of ``decoding.DecodingOptions`` that apply here (``SearchOptions``, or a
``DecodingOptions`` itself): max_length, min_length, beam_size, n_best, length_penalty, no_repeat_ngram_size,
end_at_max_length, return_attention, and for sampling (greedy path, temperature > 0) top_k, top_p and seed: the
same filters as ``decoding.filters``, drawn with numpy's generator (so not torch's draws).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from multimodal_s2s.onnx_runtime.model import EncodedMemory, OnnxTextModel
from multimodal_s2s.tokenizers.special import BOS_ID, EOS_ID, PAD_ID

NEG_INF = float("-inf")


@dataclass(frozen=True)
class SearchOptions:
    """The ``DecodingOptions`` fields that decoding on an export reads (same meaning, same defaults)."""

    max_length: int = 64
    min_length: int = 0
    beam_size: int = 1
    n_best: int = 1
    length_penalty: float = 0.0
    no_repeat_ngram_size: int = 0
    end_at_max_length: bool = False
    return_attention: bool = False
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for name, minimum in (("max_length", 1), ("min_length", 0), ("beam_size", 1), ("n_best", 1),
                              ("no_repeat_ngram_size", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.n_best > self.beam_size or self.min_length > self.max_length:
            raise ValueError(f"need n_best <= beam_size and min_length <= max_length, got {self}")
        if not self.length_penalty >= 0 or not self.temperature >= 0:
            raise ValueError(f"length_penalty and temperature must be numbers >= 0, got {self}")
        if self.temperature > 0 and self.beam_size != 1:
            raise ValueError("sampling (temperature > 0) works with beam_size 1 only")


@dataclass
class SearchResult:
    """As ``DecodingResult``: tokens (no BOS/EOS), score, log_prob, n_best [(tokens, score)], attention
    (len(tokens), T_valid) or None."""

    tokens: list[int]
    score: float
    log_prob: float
    n_best: list[tuple[list[int], float]] = field(default_factory=list)
    attention: np.ndarray | None = None


def ranking_score(log_prob: np.ndarray, length: np.ndarray | int, alpha: float) -> np.ndarray:
    """``log_prob / length**alpha`` in float32, as ``decoding.options.ranking_score``."""
    if alpha == 0:
        return log_prob
    return log_prob / np.power(np.asarray(length, dtype=np.float32), np.float32(alpha))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(N, V) float32 -> log-probabilities over the last axis."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def constrain(logits: np.ndarray, prefix: np.ndarray, options) -> np.ndarray:
    """``decoding.filters.constraint_filters``: never PAD or BOS, EOS not before min_length, no repeated n-gram,
    only EOS at the last step. logits (N, V), prefix (N, L) (BOS first) -> new logits (N, V)."""
    logits = logits.copy()
    logits[:, [PAD_ID, BOS_ID]] = NEG_INF
    generated = prefix.shape[1] - 1
    if generated < options.min_length:
        logits[:, EOS_ID] = NEG_INF
    n = options.no_repeat_ngram_size
    if n > 0 and prefix.shape[1] >= n:
        windows = np.lib.stride_tricks.sliding_window_view(prefix, n, axis=1)  # (N, W, n)
        tail = prefix[:, prefix.shape[1] - n + 1 :][:, None, :]  # (N, 1, n-1)
        repeats = (windows[:, :, : n - 1] == tail).all(axis=2)  # (N, W)
        rows, positions = np.nonzero(repeats)
        logits[rows, windows[rows, positions, n - 1]] = NEG_INF
    if options.end_at_max_length and prefix.shape[1] >= options.max_length:
        only_eos = np.full_like(logits, NEG_INF)
        only_eos[:, EOS_ID] = logits[:, EOS_ID]
        logits = only_eos
    return logits


class Stepper:
    """N = B * g rows decoded in lockstep from BOS (``decoding.stepper.TokenStepper`` on numpy): their tokens
    (N, max_length + 1), the self-attention cache, and the attention (N, max_length, T) when asked for."""

    def __init__(self, model: OnnxTextModel, memory: EncodedMemory, options, rows_per_example: int = 1):
        self.model, self.memory = model, memory
        rows = memory.batch * rows_per_example
        self.tokens = np.full((rows, options.max_length + 1), PAD_ID, dtype=np.int64)
        self.tokens[:, 0] = BOS_ID
        self.length = 1
        self.cache = model.empty_cache(rows)
        self.attention = None
        if options.return_attention:
            self.attention = np.zeros((rows, options.max_length, memory.memory_bias.shape[1]), dtype=np.float32)

    @property
    def prefix(self) -> np.ndarray:
        return self.tokens[:, : self.length]

    @property
    def generated(self) -> int:
        return self.length - 1

    def next_logits(self) -> np.ndarray:
        """(N, V) float32 scores of the token after the current prefix; records its attention."""
        result = self.model.step(self.tokens[:, self.length - 1], self.length - 1, self.cache, self.memory)
        self.cache = result.present
        if self.attention is not None:
            self.attention[:, self.length - 1] = result.attention
        return result.logits

    def append(self, next_tokens: np.ndarray) -> None:
        self.tokens[:, self.length] = next_tokens
        self.length += 1

    def reorder(self, index: np.ndarray) -> None:
        """Keep rows ``index`` (N,), in that order: prefixes, attention and cache."""
        self.tokens[:, : self.length] = self.tokens[index, : self.length]
        if self.attention is not None:
            self.attention[:, : self.length] = self.attention[index, : self.length]
        self.cache = [layer[:, index] for layer in self.cache]


def greedy_search(model: OnnxTextModel, memory: EncodedMemory, options) -> list[SearchResult]:
    """The most probable token of every row until all emitted EOS or ``options.max_length`` steps -> B results."""
    batch = memory.batch
    stepper = Stepper(model, memory, options)
    sums = np.zeros(batch, dtype=np.float32)
    finished = np.zeros(batch, dtype=bool)
    out_lengths = np.full(batch, options.max_length, dtype=np.int64)
    sampler = Sampler(options) if options.temperature > 0 else None
    for step in range(options.max_length):
        logits = constrain(stepper.next_logits(), stepper.prefix, options)
        log_probs = log_softmax(logits)
        next_tokens = log_probs.argmax(axis=1) if sampler is None else sampler(logits)
        chosen = log_probs[np.arange(batch), next_tokens]
        sums += np.where(finished, np.float32(0), chosen)
        ends_now = (next_tokens == EOS_ID) & ~finished
        out_lengths[ends_now] = step
        finished |= ends_now
        stepper.append(np.where(finished, PAD_ID, next_tokens))
        if finished.all():
            break
    scores = ranking_score(sums, out_lengths + finished, options.length_penalty)
    valid = memory.memory_bias == 0  # (B, T)
    results = []
    for b in range(batch):
        tokens = stepper.tokens[b, 1 : 1 + out_lengths[b]].tolist()
        attention = None
        if stepper.attention is not None:
            attention = stepper.attention[b, : out_lengths[b]][:, valid[b]]
        results.append(SearchResult(tokens, float(scores[b]), float(sums[b]), [(tokens, float(scores[b]))], attention))
    return results


class Sampler:
    """Draw the next token from softmax(logits / temperature), top-k then top-p filtered (``decoding.filters``)."""

    def __init__(self, options):
        self.options, self.generator = options, np.random.default_rng(options.seed)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """logits (N, V) -> (N,) drawn ids."""
        logits = logits / np.float32(self.options.temperature)
        if self.options.top_k is not None:
            k = min(self.options.top_k, logits.shape[1])
            kth_best = -np.partition(-logits, k - 1, axis=1)[:, k - 1 : k]  # (N, 1)
            logits = np.where(logits < kth_best, NEG_INF, logits)
        probs = np.exp(log_softmax(logits))
        if self.options.top_p is not None:
            order = np.argsort(-logits, axis=1, kind="stable")
            sorted_probs = np.take_along_axis(probs, order, axis=1)
            drop_sorted = np.cumsum(sorted_probs, axis=1) - sorted_probs >= self.options.top_p
            drop = np.zeros_like(drop_sorted)
            np.put_along_axis(drop, order, drop_sorted, axis=1)
            probs = np.where(drop, 0.0, probs)
        cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
        draws = self.generator.random((logits.shape[0], 1))
        return np.minimum((cumulative < draws).sum(axis=1), logits.shape[1] - 1)


def no_speech_probabilities(model: OnnxTextModel, memory: EncodedMemory) -> np.ndarray:
    """(B,) the probability of EOS right after BOS (``speech.fallback.no_speech_probabilities``): one step."""
    bos = np.full(memory.batch, BOS_ID, dtype=np.int64)
    probabilities = np.exp(log_softmax(model.step(bos, 0, model.empty_cache(memory.batch), memory).logits))
    return probabilities[:, EOS_ID]


def search(model: OnnxTextModel, memory: EncodedMemory, options) -> list[SearchResult]:
    """Greedy or sampling (beam_size 1) or beam search, as ``decoding.decode_encoded`` picks."""
    if options.beam_size == 1:
        return greedy_search(model, memory, options)
    from multimodal_s2s.onnx_runtime.beam import beam_search

    return beam_search(model, memory, options)
