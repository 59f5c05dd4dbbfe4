"""Beam search on an exported model, numpy alone: ``decoding.beam`` step for step (B examples x K beams as B*K
rows; the best 2K extensions, EOS ones set aside as finished, the best K others continue; an example is done
when K finished hypotheses beat its best live beam), ranked by the length-penalized score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multimodal_s2s.onnx_runtime.model import EncodedMemory, OnnxTextModel
from multimodal_s2s.onnx_runtime.search import (
    NEG_INF,
    SearchResult,
    Stepper,
    constrain,
    log_softmax,
    ranking_score,
)
from multimodal_s2s.tokenizers.special import EOS_ID


@dataclass
class Hypotheses:
    """H hypotheses per example, best first (-inf score: an empty slot): scores, log_probs (B, H), out_lengths
    (B, H), tokens (B, H, W) (BOS first), attention (B, H, W - 1, T) or None."""

    scores: np.ndarray
    log_probs: np.ndarray
    out_lengths: np.ndarray
    tokens: np.ndarray
    attention: np.ndarray | None = None

    def merge(self, other: Hypotheses) -> Hypotheses:
        """The best H of self and ``other`` per example, best first."""
        size = self.scores.shape[1]
        scores = np.concatenate([self.scores, other.scores], axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :size]  # (B, H)

        def pick(mine: np.ndarray | None, theirs: np.ndarray) -> np.ndarray:
            if mine is None:
                mine = np.zeros((theirs.shape[0], size, *theirs.shape[2:]), dtype=theirs.dtype)
            both = np.concatenate([mine, theirs], axis=1)
            return both[np.arange(both.shape[0])[:, None], best]

        return Hypotheses(
            np.take_along_axis(scores, best, axis=1), pick(self.log_probs, other.log_probs),
            pick(self.out_lengths, other.out_lengths), pick(self.tokens, other.tokens),
            None if other.attention is None else pick(self.attention, other.attention),
        )

    def results(self, valid: np.ndarray, n_best: int) -> list[SearchResult]:
        """One result per example: the best of its first ``n_best`` hypotheses; valid (B, T) memory rows."""
        chosen = self.scores[:, :n_best].argmax(axis=1)
        results = []
        for b, h in enumerate(chosen):
            outputs = [self.tokens[b, slot, 1 : 1 + self.out_lengths[b, slot]].tolist() for slot in range(n_best)]
            ranked = [(outputs[i], float(s)) for i, s in enumerate(self.scores[b, :n_best]) if s != NEG_INF]
            attention = None
            if self.attention is not None:
                attention = self.attention[b, h, : self.out_lengths[b, h]][:, valid[b]]
            results.append(SearchResult(
                outputs[h], float(self.scores[b, h]), float(self.log_probs[b, h]),
                ranked or [(outputs[0], NEG_INF)], attention,
            ))
        return results


def beam_search(model: OnnxTextModel, memory: EncodedMemory, options) -> list[SearchResult]:
    """memory of B examples -> B results, each with up to ``options.n_best`` hypotheses."""
    batch, beams, width = memory.batch, options.beam_size, options.max_length + 1
    stepper = Stepper(model, memory, options, rows_per_example=beams)
    finished = Hypotheses(
        np.full((batch, beams), NEG_INF, dtype=np.float32), np.zeros((batch, beams), dtype=np.float32),
        np.zeros((batch, beams), dtype=np.int64), np.zeros((batch, beams, width), dtype=np.int64),
    )
    beam_sums = np.full((batch, beams), NEG_INF, dtype=np.float32)  # only beam 0 is live at first
    beam_sums[:, 0] = 0.0
    done = np.zeros(batch, dtype=bool)
    first_row = np.arange(batch)[:, None] * beams  # (B, 1)
    for _ in range(options.max_length):
        log_probs = log_softmax(constrain(stepper.next_logits(), stepper.prefix, options))  # (B*K, V)
        vocab = log_probs.shape[1]
        candidates = (beam_sums.reshape(-1, 1) + log_probs).reshape(batch, -1)  # (B, K*V)
        top_index = _top(candidates, 2 * beams)  # (B, 2K), best first
        top_sums = np.take_along_axis(candidates, top_index, axis=1)
        finished = _set_aside_finished(finished, stepper, beam_sums, log_probs, top_sums, done, options)
        top_tokens = top_index % vocab
        keep = np.argsort(top_tokens == EOS_ID, axis=1, kind="stable")[:, :beams]  # non-EOS first, in rank order
        beam_sums = np.take_along_axis(top_sums, keep, axis=1)
        source_beams = np.take_along_axis(top_index, keep, axis=1) // vocab
        stepper.reorder((first_row + source_beams).reshape(-1))
        stepper.append(np.take_along_axis(top_tokens, keep, axis=1).reshape(-1))
        best_live = ranking_score(beam_sums[:, 0], stepper.generated, options.length_penalty)
        full = finished.scores[:, -1] > NEG_INF
        done |= (full & (best_live <= finished.scores[:, -1])) | (beam_sums[:, 0] == NEG_INF)
        if done.all():
            return finished.results(memory.memory_bias == 0, options.n_best)
    live = _hypotheses(stepper, beam_sums, ~done[:, None], options.max_length, options.length_penalty, ended=False)
    return finished.merge(live).results(memory.memory_bias == 0, options.n_best)


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """(B, M) -> (B, count) indices of the largest values per row, largest first."""
    count = min(count, values.shape[1])
    part = np.argpartition(-values, count - 1, axis=1)[:, :count]
    order = np.argsort(-np.take_along_axis(values, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _set_aside_finished(finished, stepper, beam_sums, log_probs, top_sums, done, options) -> Hypotheses:
    """Merge into ``finished`` every beam whose EOS extension ranks in its example's top K."""
    batch, beams = beam_sums.shape
    eos_sums = beam_sums + log_probs[:, EOS_ID].reshape(batch, beams)  # (B, K)
    ends = (eos_sums >= top_sums[:, beams - 1 : beams]) & (eos_sums > NEG_INF) & ~done[:, None]
    if not ends.any():
        return finished
    ended = _hypotheses(stepper, eos_sums, ends, stepper.generated, options.length_penalty, ended=True)
    return finished.merge(ended)


def _hypotheses(stepper: Stepper, sums: np.ndarray, valid: np.ndarray, out_length: int, alpha: float,
                ended: bool) -> Hypotheses:
    """The stepper's current beams as hypotheses of ``out_length`` tokens (+ the EOS when ``ended``)."""
    batch, beams = sums.shape
    scores = np.where(valid, ranking_score(sums, out_length + int(ended), alpha), np.float32(NEG_INF))
    attention = stepper.attention
    return Hypotheses(
        scores.astype(np.float32), sums, np.full((batch, beams), out_length, dtype=np.int64),
        stepper.tokens.reshape(batch, beams, -1).copy(),
        None if attention is None else attention.reshape(batch, beams, *attention.shape[1:]).copy(),
    )
