"""What to decode and how (``DecodingOptions``), what comes back (``DecodingResult``), and the ranking score."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

#: How a beam search finishes hypotheses (``decoding.beam``): HF's rule, or whisper's ``BeamSearchDecoder``.
BEAM_RULES = ("hf", "whisper")


class DecodingOptionsError(ValueError):
    """Decoding options that cannot work together or are out of range."""


@dataclass(frozen=True)
class DecodingOptions:
    """How ``decode`` searches.

    Attributes:
        max_length: most decoding steps, i.e. new tokens counting the EOS; an output has at most
            ``max_length`` tokens, and one that reaches it without EOS is ranked as unfinished.
        min_length: EOS is banned until the output has this many tokens (0 = no minimum).
        beam_size: 1 = greedy (or sampling), > 1 = beam search.
        n_best: hypotheses returned per example in ``DecodingResult.n_best`` (<= beam_size).
        length_penalty: alpha in the ranking score ``log_prob / length**alpha`` (see ``ranking_score``);
            0 ranks by the raw sum of log-probabilities, 1 by the mean per token.
        temperature: 0 picks the most probable token; > 0 samples from softmax(logits / temperature)
            (greedy path only, beam_size must be 1).
        top_k: when sampling, keep only the k most probable tokens (None = all).
        top_p: when sampling, keep the smallest set of tokens whose probability reaches p, in (0, 1].
        no_repeat_ngram_size: n > 0 bans any token that would repeat an n-gram already in the output.
        end_at_max_length: the last of the ``max_length`` steps may emit EOS only (with log-probability 0),
            so every output ends with EOS (HF's ``forced_eos_token_id``, which Marian's configs set).
        suppress_tokens: ids banned at every step (whisper's ``suppress_tokens``; PAD and BOS always are).
        suppress_at_start: ids banned at the first step only (whisper's ``SuppressBlank``: the space and EOS).
        beam_rule: "hf" (the EOS extensions in the top K are finished; a search stops when no live beam can
            beat its K finished ones; a score's length counts the EOS) or "whisper" (its ``BeamSearchDecoder``:
            the EOS extensions scoring above the K-th best other extension are finished, the first K to finish
            are kept and the search stops with them; a score's length leaves the EOS out, as whisper's
            ``MaximumLikelihoodRanker``; beams left unfinished at max_length fill the free places).
        use_cache: True feeds only the new token with the decoder cache; False feeds the whole prefix
            with no cache at every step (recomputation; same result, slower).
        return_attention: fill ``DecodingResult.attention`` (when the decoder attends).
        seed: seed of the sampling generator (None = torch's global generator).
    """

    max_length: int = 64
    min_length: int = 0
    beam_size: int = 1
    n_best: int = 1
    length_penalty: float = 0.0
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    no_repeat_ngram_size: int = 0
    end_at_max_length: bool = False
    suppress_tokens: tuple[int, ...] = ()
    suppress_at_start: tuple[int, ...] = ()
    beam_rule: str = "hf"
    early_stopping: bool = False
    renormalize: bool = True
    length_offset: int = 0
    use_cache: bool = True
    return_attention: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_int("max_length", self.max_length, minimum=1)
        _check_int("min_length", self.min_length, minimum=0)
        if self.min_length > self.max_length:
            raise DecodingOptionsError(f"min_length ({self.min_length}) must be <= max_length ({self.max_length})")
        _check_int("beam_size", self.beam_size, minimum=1)
        _check_int("n_best", self.n_best, minimum=1)
        _check_int("no_repeat_ngram_size", self.no_repeat_ngram_size, minimum=0)
        _check_int("length_offset", self.length_offset, minimum=0)
        if self.n_best > self.beam_size:
            raise DecodingOptionsError(f"n_best ({self.n_best}) must be <= beam_size ({self.beam_size})")
        if not (math.isfinite(self.length_penalty) and self.length_penalty >= 0):
            raise DecodingOptionsError(f"length_penalty must be a finite number >= 0, got {self.length_penalty}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise DecodingOptionsError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.sampling and self.beam_size != 1:
            raise DecodingOptionsError("sampling (temperature > 0) works with beam_size 1 only")
        if self.top_k is not None:
            _check_int("top_k", self.top_k, minimum=1)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise DecodingOptionsError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.beam_rule not in BEAM_RULES:
            raise DecodingOptionsError(f"beam_rule must be one of {', '.join(BEAM_RULES)}, got {self.beam_rule!r}")
        for name in ("suppress_tokens", "suppress_at_start"):
            ids = getattr(self, name)
            if not isinstance(ids, tuple) or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
                raise DecodingOptionsError(f"{name} must be a tuple of token ids >= 0, got {ids!r}")
        if (self.top_k is not None or self.top_p is not None) and not self.sampling:
            raise DecodingOptionsError("top_k and top_p apply to sampling only: set temperature > 0")

    @property
    def sampling(self) -> bool:
        return self.temperature > 0


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DecodingOptionsError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class DecodingResult:
    """One example's decoding.

    Attributes:
        tokens: the best hypothesis, without BOS and EOS.
        score: its ranking score (``ranking_score`` of log_prob and length).
        log_prob: its summed log-probability (EOS included when it finished).
        n_best: up to ``options.n_best`` distinct hypotheses as (tokens, score), best first.
        attention: (len(tokens), T_valid) per output token, the cross-attention weights over the
            example's valid memory rows; None unless asked for and the decoder attends.
    """

    tokens: list[int]
    score: float
    log_prob: float
    n_best: list[tuple[list[int], float]] = field(default_factory=list)
    attention: Tensor | None = None


def ranking_score(log_prob: Tensor, length: Tensor | int, alpha: float) -> Tensor:
    """Length-penalized score ``log_prob / length**alpha`` (alpha 0 = raw sum, 1 = mean per token).

    ``length`` counts the scored tokens: the output tokens plus the EOS when the hypothesis finished,
    so an empty finished output has length 1. The simple power form (as whisper's and HF's) was chosen
    over GNMT's ((5 + length) / 6)**alpha: one parameter with a plain meaning.
    """
    if alpha == 0:
        return log_prob
    length = torch.as_tensor(length, dtype=log_prob.dtype, device=log_prob.device)
    return log_prob / length.pow(alpha)
