"""Which hypothesis is each example's answer: the ranker seam of decoding (whisper's ``SequenceRanker``).

The search keeps each example's hypotheses best first by their length-penalized score
(``ranking_score(log_prob, length, options.length_penalty)``), which also decides which finished
hypotheses it keeps and when it stops. A ranker then picks the answer among the n-best it returns:

- ``LengthPenaltyRanker``: the best length-penalized score (whisper's ``MaximumLikelihoodRanker``).
- ``CTCHybridRanker``: the best ``(1 - w) * score + w * ctc_score``, as in ESPnet's hybrid CTC/attention
  decoding: ``ctc_score`` is log P_ctc(hypothesis | input) from a CTC head over the encoder's memory,
  under the same length penalty (the output tokens + 1, as an EOS-ended score counts them). It penalizes
  hypotheses that the audio does not support (dropped or repeated words).

The answer keeps its own length-penalized score and summed log-probability; the n-best keep their order.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from multimodal_s2s.decoding.hypotheses import NEG_INF, Hypotheses
from multimodal_s2s.decoding.options import DecodingOptions, DecodingResult, ranking_score
from multimodal_s2s.types import SequenceOutput


class SequenceRanker(Protocol):
    def choose(self, hypotheses: Hypotheses, encoded: SequenceOutput, options: DecodingOptions) -> Tensor:
        """(B,) long: each example's answer among its first ``options.n_best`` hypotheses (B, H), which
        the search left best first by length-penalized score (-inf: an empty slot)."""
        ...


class SequenceScorer(Protocol):
    """What ``CTCHybridRanker`` needs of a CTC head (``models.ctc.CTCHead`` offers it)."""

    def sequence_log_probs(self, encoded: SequenceOutput, hypotheses: list[list[int]]) -> Tensor:
        """log P(hypothesis | input) (H,) of each token list, for the single example (B = 1) in ``encoded``."""
        ...


class LengthPenaltyRanker:
    """The best length-penalized score: the ranking the search itself uses."""

    def choose(self, hypotheses: Hypotheses, encoded: SequenceOutput, options: DecodingOptions) -> Tensor:
        return hypotheses.scores[:, : options.n_best].argmax(dim=1)  # (B,)


class CTCHybridRanker:
    """The best ``(1 - weight) * score + weight * ctc_score`` (see the module docstring)."""

    def __init__(self, ctc: SequenceScorer, weight: float):
        """ctc: scores token sequences given the encoder output; weight: of the CTC score, in (0, 1]."""
        if not 0 < weight <= 1:
            raise ValueError(f"the CTC weight of a CTC-hybrid ranker must be in (0, 1], got {weight}")
        self.ctc, self.weight = ctc, weight

    def choose(self, hypotheses: Hypotheses, encoded: SequenceOutput, options: DecodingOptions) -> Tensor:
        scores = hypotheses.scores[:, : options.n_best]  # (B, H')
        chosen = scores.argmax(dim=1)  # (B,)
        for row, count in enumerate((scores > NEG_INF).sum(dim=1).tolist()):
            if count < 2:
                continue  # nothing to choose between
            lengths = hypotheses.out_lengths[row, :count]  # (H'',)
            tokens = [hypotheses.tokens[row, h, 1 : 1 + length].tolist() for h, length in enumerate(lengths.tolist())]
            example = SequenceOutput(encoded.memory[row : row + 1], encoded.mask[row : row + 1])
            ctc_log_probs = self.ctc.sequence_log_probs(example, tokens)  # (H'',)
            ctc_scores = ranking_score(ctc_log_probs, lengths.to(ctc_log_probs.device) + 1, options.length_penalty)
            combined = (1 - self.weight) * scores[row, :count].to(ctc_scores.device) + self.weight * ctc_scores
            chosen[row] = int(combined.argmax())
        return chosen


def ranked_results(
    hypotheses: Hypotheses, encoded: SequenceOutput, options: DecodingOptions, ranker: SequenceRanker | None
) -> list[DecodingResult]:
    """One DecodingResult per example, its answer chosen by ``ranker`` (None: ``LengthPenaltyRanker``)."""
    chosen = (ranker or LengthPenaltyRanker()).choose(hypotheses, encoded, options)
    return hypotheses.to_results(encoded.mask, options.n_best, chosen)
