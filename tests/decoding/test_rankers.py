"""Rankers: which of a beam's hypotheses is each example's answer (the length-penalty ranker by default,
the hybrid CTC/attention ranker with a CTC head), chosen inside decoding on the toy model of test_decoding."""

from __future__ import annotations

import math

import pytest
import torch
from test_decoding import ToyModel, sequence_log_prob, toy_batch
from torch import Tensor

from multimodal_s2s.decoding import CTCHybridRanker, DecodingOptions, LengthPenaltyRanker, decode
from multimodal_s2s.types import SequenceOutput

ALPHA = 1.0
BEAM = DecodingOptions(beam_size=4, n_best=4, max_length=8, length_penalty=ALPHA)


class PreferLast:
    """A CTC stand-in that gives the last hypothesis it is shown log-probability 0 and the others -100,
    and records what it is asked."""

    def __init__(self):
        self.calls: list[tuple[int, list[list[int]]]] = []

    def sequence_log_probs(self, encoded: SequenceOutput, hypotheses: list[list[int]]) -> Tensor:
        self.calls.append((encoded.memory.shape[0], hypotheses))
        scores = torch.full((len(hypotheses),), -100.0)
        scores[-1] = 0.0
        return scores


@pytest.fixture(scope="module")
def model() -> ToyModel:
    return ToyModel(vocab_size=12)


def test_the_length_penalty_ranker_is_the_default_and_picks_the_best_score(model):
    inputs, lengths = toy_batch()
    plain = decode(model, inputs, BEAM, lengths)
    ranked = decode(model, inputs, BEAM, lengths, ranker=LengthPenaltyRanker())
    assert [(r.tokens, r.score, r.log_prob, r.n_best) for r in ranked] == [
        (r.tokens, r.score, r.log_prob, r.n_best) for r in plain
    ]
    assert all((r.tokens, r.score) == r.n_best[0] for r in plain)


def test_the_ctc_hybrid_ranker_picks_the_best_combined_score_and_keeps_its_own_scores(model):
    inputs, lengths = toy_batch()
    plain = decode(model, inputs, BEAM, lengths)
    scorer = PreferLast()
    ranked = decode(model, inputs, BEAM, lengths, ranker=CTCHybridRanker(scorer, weight=1.0))
    assert [(rows, hypotheses) for rows, hypotheses in scorer.calls] == [(1, [t for t, _ in r.n_best]) for r in plain]
    encoded = model.encode(inputs, lengths)
    for row, (before, after) in enumerate(zip(plain, ranked, strict=True)):
        assert len(before.n_best) > 1 and after.n_best == before.n_best  # the n-best keep their order
        assert (after.tokens, after.score) == before.n_best[-1]  # CTC alone (weight 1) prefers the last
        example = SequenceOutput(encoded.memory[row : row + 1], encoded.mask[row : row + 1])
        log_prob = sequence_log_prob(model, example, after.tokens, ended=True)
        assert math.isclose(after.log_prob, log_prob, rel_tol=1e-5)  # its own summed log-probability
        assert math.isclose(after.score, log_prob / (len(after.tokens) + 1) ** ALPHA, rel_tol=1e-5)


def test_the_ctc_weight_trades_the_two_scores(model):
    inputs, lengths = toy_batch()
    plain = decode(model, inputs, BEAM, lengths)
    weight = 0.01  # a small CTC weight: -100 per token moves the choice only between close scores
    ranked = decode(model, inputs, BEAM, lengths, ranker=CTCHybridRanker(PreferLast(), weight))
    for before, after in zip(plain, ranked, strict=True):
        last = len(before.n_best) - 1
        combined = [
            (1 - weight) * score + weight * (0.0 if h == last else -100.0 / (len(tokens) + 1) ** ALPHA)
            for h, (tokens, score) in enumerate(before.n_best)
        ]
        assert (after.tokens, after.score) == before.n_best[max(range(len(combined)), key=combined.__getitem__)]


def test_greedy_decoding_has_nothing_to_rank(model):
    inputs, lengths = toy_batch()
    scorer = PreferLast()
    greedy = DecodingOptions(max_length=8, length_penalty=ALPHA)
    ranked = decode(model, inputs, greedy, lengths, ranker=CTCHybridRanker(scorer, weight=0.5))
    assert [r.tokens for r in ranked] == [r.tokens for r in decode(model, inputs, greedy, lengths)]
    assert scorer.calls == []


@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5])
def test_the_ctc_weight_must_be_in_range(weight):
    with pytest.raises(ValueError, match=r"CTC weight .* must be in \(0, 1\]"):
        CTCHybridRanker(PreferLast(), weight)
