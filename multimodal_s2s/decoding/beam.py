"""Batched beam search over B examples x K beams, flattened to B*K rows of one decoder batch.

Each step scores the K*V extensions of every example's beams, takes the best 2K (so that K of them
continue even if K end with EOS), sets the EOS extensions that rank in the top K aside as finished
hypotheses with their length-penalized score, and continues with the best K others (the decoder
cache follows through ``cache.reorder``). An example is done when it holds K finished hypotheses
and its best live beam, scored at its current length, does not beat the worst of them (exact for
length_penalty 0, where scores only fall; HF's default rule otherwise), or with ``early_stopping`` as soon as
it holds K. At ``max_length`` the live beams of unfinished examples are ranked too. Lengths count
``length_offset`` tokens more than the output (HF's forced first token). Everything is tensor ops over the batch.

``beam_rule="whisper"`` follows whisper's ``BeamSearchDecoder`` (patience 1) instead: the EOS extensions
that score above the K-th best non-EOS extension are finished, the first K of an example to finish are kept
(the best first among those finishing together) and it is done with them; at ``max_length`` its best live
beams fill the places left; scores divide by the output length without the EOS.
"""

from __future__ import annotations

import torch
from torch import Tensor

from multimodal_s2s.decoding.filters import constrained_log_probs, constraint_filters
from multimodal_s2s.decoding.hypotheses import NEG_INF, Hypotheses
from multimodal_s2s.decoding.options import DecodingOptions, DecodingResult, ranking_score
from multimodal_s2s.decoding.rankers import SequenceRanker, ranked_results
from multimodal_s2s.decoding.stepper import TextModel, TokenStepper
from multimodal_s2s.types import EOS_ID, SequenceOutput


def beam_search(
    model: TextModel, encoded: SequenceOutput, options: DecodingOptions, ranker: SequenceRanker | None = None
) -> list[DecodingResult]:
    """encoded: (B, T, D) memory -> B results, each with up to ``options.n_best`` hypotheses, its answer
    chosen among them by ``ranker`` (None: the best length-penalized score)."""
    batch, beams, device = encoded.memory.shape[0], options.beam_size, encoded.memory.device
    stepper = TokenStepper(
        model, encoded, options.max_length, options.use_cache, options.return_attention, rows_per_example=beams
    )
    constraints = constraint_filters(options)
    whisper = options.beam_rule == "whisper"
    finished = Hypotheses.empty(batch, beams, options.max_length + 1, device)
    counts = torch.zeros(batch, dtype=torch.long, device=device)  # finished hypotheses kept (whisper's rule)
    # Only beam 0 of each example is live at first, so the first step expands one beam per example.
    beam_sums = torch.full((batch, beams), NEG_INF, device=device)  # (B, K) summed log-probs
    beam_sums[:, 0] = 0.0
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    first_row = torch.arange(batch, device=device).unsqueeze(1) * beams  # (B, 1)
    for _ in range(options.max_length):
        log_probs = constrained_log_probs(constraints, stepper.next_logits(), stepper.prefix, options.renormalize)
        candidates = (beam_sums.view(-1, 1) + log_probs).view(batch, -1)  # (B, K*V)
        top_sums, top_index = candidates.topk(2 * beams, dim=1)  # (B, 2K)
        next_sums, source_beams, next_tokens = _continue_best(top_sums, top_index, log_probs.shape[1], beams)
        eos_sums = beam_sums + log_probs[:, EOS_ID].view(batch, beams)  # (B, K)
        if whisper:
            ends = _whisper_ends(eos_sums, next_sums[:, beams - 1 :], counts, done)
            counts += ends.sum(dim=1)
        else:
            ends = (eos_sums >= top_sums[:, beams - 1 : beams]) & (eos_sums > NEG_INF) & ~done.unsqueeze(1)
        if bool(ends.any()):
            finished = finished.merge(_hypotheses(stepper, eos_sums, ends, stepper.generated, options, ended=True))
        beam_sums = next_sums
        stepper.reorder((first_row + source_beams).view(-1))
        stepper.append(next_tokens.view(-1))
        if whisper:
            done |= counts >= beams
        else:
            length = stepper.generated + options.length_offset
            best_live = ranking_score(beam_sums[:, 0], length, options.length_penalty)  # (B,)
            full = finished.scores[:, -1] > NEG_INF
            done |= full & ((best_live <= finished.scores[:, -1]) | options.early_stopping)
        done |= beam_sums[:, 0] == NEG_INF
        if bool(done.all()):
            return ranked_results(finished, encoded, options, ranker)
    unfinished = ~done.unsqueeze(1)
    if whisper:  # the best live beams fill the places left
        unfinished = unfinished & (torch.arange(beams, device=device) < (beams - counts).unsqueeze(1))
    live = _hypotheses(stepper, beam_sums, unfinished, options.max_length, options, ended=False)
    return ranked_results(finished.merge(live), encoded, options, ranker)


def _whisper_ends(eos_sums: Tensor, kth_live: Tensor, counts: Tensor, done: Tensor) -> Tensor:
    """(B, K) bool: the beams whose EOS extension (sums (B, K)) scores above the K-th best non-EOS extension
    (B, 1), best first up to the places left (K - counts (B,)) of examples not done."""
    beams = eos_sums.shape[1]
    ends = (eos_sums > kth_live) & (eos_sums > NEG_INF) & ~done.unsqueeze(1)
    scores = eos_sums.masked_fill(~ends, NEG_INF)
    order = scores.argsort(dim=1, descending=True, stable=True)  # (B, K)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(beams, device=order.device).expand_as(order))
    return ends & (rank < (beams - counts).unsqueeze(1))


def _continue_best(top_sums: Tensor, top_index: Tensor, vocab: int, beams: int) -> tuple[Tensor, Tensor, Tensor]:
    """The K best non-EOS extensions of each example, best first: (sums, source beams, tokens), each (B, K)."""
    top_tokens = top_index % vocab
    # A stable sort on "is EOS" keeps the rank order and puts the (at most K) EOS extensions last.
    keep = torch.sort((top_tokens == EOS_ID).to(torch.uint8), dim=1, stable=True).indices[:, :beams]
    return top_sums.gather(1, keep), top_index.gather(1, keep) // vocab, top_tokens.gather(1, keep)


def _hypotheses(
    stepper: TokenStepper, sums: Tensor, valid: Tensor, out_length: int, options: DecodingOptions, ended: bool
) -> Hypotheses:
    """The stepper's current beams as hypotheses: sums (B, K), valid (B, K) or (B, 1) bool, ``out_length``
    output tokens each (+1 scored token for the EOS when ``ended``, except under whisper's rule)."""
    batch, beams = sums.shape
    whisper = options.beam_rule == "whisper"
    length = max(out_length, 1) if whisper else out_length + int(ended) + options.length_offset
    scores = ranking_score(sums, length, options.length_penalty).masked_fill(~valid, NEG_INF)
    attention = stepper.attention
    return Hypotheses(
        scores=scores,
        log_probs=sums,
        out_lengths=torch.full_like(sums, out_length, dtype=torch.long),
        tokens=stepper.tokens.view(batch, beams, -1),
        attention=None if attention is None else attention.view(batch, beams, *attention.shape[1:]),
    )
