"""Greedy decoding and sampling: one hypothesis per example, the whole batch in lockstep."""

from __future__ import annotations

import torch
from torch import Tensor

from multimodal_s2s.decoding.filters import apply_filters, constraint_filters, sampling_filters
from multimodal_s2s.decoding.hypotheses import Hypotheses
from multimodal_s2s.decoding.options import DecodingOptions, DecodingResult, ranking_score
from multimodal_s2s.decoding.rankers import ranked_results
from multimodal_s2s.decoding.stepper import TextModel, TokenStepper
from multimodal_s2s.types import EOS_ID, PAD_ID, SequenceOutput


def greedy_decode(model: TextModel, encoded: SequenceOutput, options: DecodingOptions) -> list[DecodingResult]:
    """Pick (temperature 0) or sample the next token of every row until all rows emitted EOS or
    ``options.max_length`` steps. encoded: (B, T, D) memory -> B results."""
    batch, device = encoded.memory.shape[0], encoded.memory.device
    stepper = TokenStepper(model, encoded, options.max_length, options.use_cache, options.return_attention)
    constraints = constraint_filters(options)
    choose = _Sampler(options, device) if options.sampling else _argmax
    log_prob_sums = torch.zeros(batch, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    out_lengths = torch.full((batch,), options.max_length, dtype=torch.long, device=device)
    for step in range(options.max_length):
        logits = apply_filters(constraints, stepper.next_logits(), stepper.prefix)  # (B, V)
        log_probs = logits.log_softmax(dim=-1)
        next_tokens = choose(logits, log_probs, stepper.prefix)  # (B,)
        chosen = log_probs.gather(1, next_tokens.unsqueeze(1)).squeeze(1)  # (B,)
        log_prob_sums += chosen.masked_fill(finished, 0.0)
        ends_now = (next_tokens == EOS_ID) & ~finished
        out_lengths.masked_fill_(ends_now, step)
        finished |= ends_now
        stepper.append(next_tokens.masked_fill(finished, PAD_ID))
        if bool(finished.all()):
            break
    scored_lengths = out_lengths + finished.long()  # the EOS counts when emitted
    hypotheses = Hypotheses(
        scores=ranking_score(log_prob_sums, scored_lengths, options.length_penalty).unsqueeze(1),
        log_probs=log_prob_sums.unsqueeze(1),
        out_lengths=out_lengths.unsqueeze(1),
        tokens=stepper.tokens.unsqueeze(1),
        attention=None if stepper.attention is None else stepper.attention.unsqueeze(1),
    )
    return ranked_results(hypotheses, encoded, options, None)  # one hypothesis each: nothing to rank


def _argmax(logits: Tensor, log_probs: Tensor, prefix: Tensor) -> Tensor:
    return log_probs.argmax(dim=-1)


class _Sampler:
    """Draw the next token from the sampling-filtered distribution (seeded when options.seed is set)."""

    def __init__(self, options: DecodingOptions, device: torch.device):
        self.filters = sampling_filters(options)
        self.generator = None
        if options.seed is not None:
            self.generator = torch.Generator(device=device).manual_seed(options.seed)

    def __call__(self, logits: Tensor, log_probs: Tensor, prefix: Tensor) -> Tensor:
        probs = apply_filters(self.filters, logits, prefix).softmax(dim=-1)  # (B, V)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
