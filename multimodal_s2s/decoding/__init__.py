"""Decoding apart from the models (as in whisper): greedy, sampling and beam search, logit filters, rankers.

``decode(model, inputs, options)`` works with any model that offers ``encode``, ``step`` and
``vocab_size`` (see ``decoders.base``); the search code never looks inside the decoder. A ranker
(``rankers``) picks each example's answer among a beam's hypotheses: the best length-penalized score by
default, or, given ``ranker=CTCHybridRanker(ctc_head, weight)``, the best hybrid CTC/attention score.
"""

from __future__ import annotations

import torch
from torch import Tensor

from multimodal_s2s.decoding.beam import beam_search
from multimodal_s2s.decoding.filters import (
    LogitFilter,
    NoRepeatNGram,
    SuppressTokens,
    Temperature,
    TopK,
    TopP,
    apply_filters,
)
from multimodal_s2s.decoding.greedy import greedy_decode
from multimodal_s2s.decoding.options import DecodingOptions, DecodingOptionsError, DecodingResult, ranking_score
from multimodal_s2s.decoding.rankers import CTCHybridRanker, LengthPenaltyRanker, SequenceRanker, SequenceScorer
from multimodal_s2s.decoding.stepper import TextModel
from multimodal_s2s.types import EOS_ID, SequenceOutput


@torch.no_grad()
def decode(
    model: TextModel,
    inputs: Tensor,
    options: DecodingOptions | None = None,
    lengths: Tensor | None = None,
    ranker: SequenceRanker | None = None,
) -> list[DecodingResult]:
    """Encode ``inputs`` (with ``lengths`` (B,) for audio and text) and decode: one result per example,
    in input order. Put the model in eval mode first (decoding does not change its mode)."""
    _check_model(model, ("encode", "step", "vocab_size"))
    return decode_encoded(model, model.encode(inputs, lengths), options, ranker)


@torch.no_grad()
def decode_encoded(
    model: TextModel,
    encoded: SequenceOutput,
    options: DecodingOptions | None = None,
    ranker: SequenceRanker | None = None,
) -> list[DecodingResult]:
    """Decode from an encoder output already computed: (B, T, D) memory -> B results, each answer chosen
    by ``ranker`` among a beam's hypotheses (None: ``LengthPenaltyRanker``; greedy has one to choose).

    Needs only ``model.step`` and ``model.vocab_size``."""
    _check_model(model, ("step", "vocab_size"))
    options = options or DecodingOptions()
    if options.beam_size == 1:
        return greedy_decode(model, encoded, options)
    return beam_search(model, encoded, options, ranker)


def _check_model(model: object, needed: tuple[str, ...]) -> None:
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise TypeError(f"decoding needs a text model with {', '.join(needed)}; {type(model).__name__} lacks {missing}")
    if model.vocab_size <= EOS_ID:
        raise ValueError(f"model.vocab_size ({model.vocab_size}) must include the special tokens (EOS id {EOS_ID})")


__all__ = [
    "CTCHybridRanker",
    "DecodingOptions",
    "DecodingOptionsError",
    "DecodingResult",
    "LengthPenaltyRanker",
    "LogitFilter",
    "NoRepeatNGram",
    "SequenceRanker",
    "SequenceScorer",
    "SuppressTokens",
    "Temperature",
    "TopK",
    "TopP",
    "apply_filters",
    "beam_search",
    "decode",
    "decode_encoded",
    "greedy_decode",
    "ranking_score",
]
