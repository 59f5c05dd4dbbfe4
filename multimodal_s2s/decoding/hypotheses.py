"""Ranked hypotheses of a batch, held as tensors, and their conversion to ``DecodingResult``s."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from multimodal_s2s.decoding.options import DecodingResult

NEG_INF = float("-inf")


@dataclass
class Hypotheses:
    """H hypotheses per example, best first; a score of -inf marks an empty slot.

    Attributes:
        scores: (B, H) ranking scores.
        log_probs: (B, H) summed log-probabilities.
        out_lengths: (B, H) long, output tokens (EOS excluded).
        tokens: (B, H, W) long, BOS then the output tokens (then anything: only out_lengths count).
        attention: (B, H, W - 1, T) per output position, or None.
    """

    scores: Tensor
    log_probs: Tensor
    out_lengths: Tensor
    tokens: Tensor
    attention: Tensor | None = None

    @classmethod
    def empty(cls, batch: int, size: int, width: int, device: torch.device) -> Hypotheses:
        """``size`` empty slots per example for token rows of ``width``."""
        return cls(
            scores=torch.full((batch, size), NEG_INF, device=device),
            log_probs=torch.zeros(batch, size, device=device),
            out_lengths=torch.zeros(batch, size, dtype=torch.long, device=device),
            tokens=torch.zeros(batch, size, width, dtype=torch.long, device=device),
        )

    def merge(self, other: Hypotheses) -> Hypotheses:
        """The best H of self and ``other`` (B, H') per example, best first."""
        size = self.scores.shape[1]
        scores, best = torch.cat([self.scores, other.scores], 1).topk(size, dim=1)  # (B, H)

        def pick(mine: Tensor, theirs: Tensor) -> Tensor:
            index = best.view(*best.shape, *[1] * (mine.dim() - 2)).expand(-1, -1, *mine.shape[2:])
            return torch.cat([mine, theirs], 1).gather(1, index)

        attention = None  # ``other`` carries attention whenever ``self`` does
        if other.attention is not None:
            mine = self.attention
            if mine is None:
                mine = other.attention.new_zeros(other.attention.shape[0], size, *other.attention.shape[2:])
            attention = pick(mine, other.attention)
        return Hypotheses(
            scores=scores,
            log_probs=pick(self.log_probs, other.log_probs),
            out_lengths=pick(self.out_lengths, other.out_lengths),
            tokens=pick(self.tokens, other.tokens),
            attention=attention,
        )

    def to_results(self, mask: Tensor, n_best: int, chosen: Tensor) -> list[DecodingResult]:
        """One DecodingResult per example: its answer is hypothesis ``chosen`` (B,) (a ranker's choice), its
        n-best the first ``n_best``; mask (B, T) bool selects the valid memory rows of attention."""
        scores, log_probs = self.scores.tolist(), self.log_probs.tolist()
        out_lengths, tokens = self.out_lengths.tolist(), self.tokens.tolist()
        attention = None if self.attention is None else self.attention.float().cpu()
        valid_rows = mask.cpu()
        results = []
        for b, (example_scores, h) in enumerate(zip(scores, chosen.tolist(), strict=True)):
            outputs = [tokens[b][slot][1 : 1 + out_lengths[b][slot]] for slot in range(len(example_scores))]
            ranked = [(outputs[i], s) for i, s in enumerate(example_scores) if s != NEG_INF] or [(outputs[0], NEG_INF)]
            weights = None
            if attention is not None:
                weights = attention[b, h, : out_lengths[b][h]][:, valid_rows[b]]  # (L_out, T_valid)
            results.append(DecodingResult(outputs[h], example_scores[h], log_probs[b][h], ranked[:n_best], weights))
        return results
