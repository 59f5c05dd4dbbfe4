"""Decoding (greedy, sampling, beam search, filters) on a tiny deterministic toy model.

The toy model is a GRU decoder with dot-product attention over an encoded input, written here so
that these tests depend only on the decoder protocol (decoders.base), not on the real decoders.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
from torch import Tensor, nn

from multimodal_s2s.decoders.base import StepOutput
from multimodal_s2s.decoding import (
    DecodingOptions,
    DecodingOptionsError,
    NoRepeatNGram,
    TopK,
    TopP,
    beam_search,
    decode,
)
from multimodal_s2s.decoding.filters import NEVER_GENERATED
from multimodal_s2s.layers.masks import lengths_to_mask
from multimodal_s2s.types import BOS_ID, EOS_ID, PAD_ID, SequenceOutput

IN_DIM, HIDDEN, MAX_POSITIONS = 6, 16, 32
LOGIT_SCALE = 3.0  # sharper toy distributions, so that hypotheses differ clearly
EOS_RAMP, EOS_FROM = 1.0, 4  # EOS grows likelier after position 4: outputs of varied lengths


class ToyCache:
    """The GRU hidden state (N, H) and the number of positions it has seen."""

    def __init__(self, hidden: Tensor, positions: int):
        self.hidden, self.positions = hidden, positions

    def reorder(self, index: Tensor) -> ToyCache:
        return ToyCache(self.hidden.index_select(0, index), self.positions)


class ToyModel(nn.Module):
    """encode: (B, T, IN_DIM) + lengths -> memory (B, T, H); step: a GRU cell with attention."""

    def __init__(self, vocab_size: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.vocab_size = vocab_size
        self.input_proj = nn.Linear(IN_DIM, HIDDEN)
        self.init_proj = nn.Linear(HIDDEN, HIDDEN)
        self.embed = nn.Embedding(vocab_size, HIDDEN)
        self.position = nn.Embedding(MAX_POSITIONS, HIDDEN)  # keeps the GRU off a fixed point
        self.cell = nn.GRUCell(HIDDEN, HIDDEN)
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.out = nn.Linear(2 * HIDDEN, vocab_size)
        self.requires_grad_(False)
        self.eval()

    def encode(self, inputs: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        if lengths is None:
            lengths = torch.full((inputs.shape[0],), inputs.shape[1])
        return SequenceOutput(torch.tanh(self.input_proj(inputs)), lengths_to_mask(lengths, inputs.shape[1]))

    def step(self, tokens: Tensor, encoded: SequenceOutput, cache=None, return_attention: bool = False) -> StepOutput:
        encoded = encoded.repeat_interleave(tokens.shape[0] // encoded.memory.shape[0])  # beams: rows per example
        if cache is None:
            cache = ToyCache(torch.tanh(self.init_proj(encoded.context_vector())), 0)
        hidden, logits, attention = cache.hidden, [], []
        for i in range(tokens.shape[1]):
            hidden = self.cell(self.embed(tokens[:, i]) + self.position.weight[cache.positions + i], hidden)  # (B, H)
            scores = torch.einsum("btd,bd->bt", encoded.memory, self.query(hidden))
            weights = scores.masked_fill(~encoded.mask, float("-inf")).softmax(-1)  # (B, T)
            context = torch.einsum("bt,btd->bd", weights, encoded.memory)
            step_logits = LOGIT_SCALE * self.out(torch.cat([hidden, context], -1))  # (B, V)
            step_logits[:, EOS_ID] += EOS_RAMP * (cache.positions + i - EOS_FROM)
            logits.append(step_logits)
            attention.append(weights)
        return StepOutput(
            logits=torch.stack(logits, 1),
            cache=ToyCache(hidden, cache.positions + tokens.shape[1]),
            attention=torch.stack(attention, 1) if return_attention else None,
        )


def toy_batch(batch: int = 3, time: int = 5, seed: int = 1) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, time, IN_DIM, generator=generator)
    lengths = torch.tensor([time - (i % time) for i in range(batch)])
    return inputs, lengths


def sequence_log_prob(model: ToyModel, encoded: SequenceOutput, tokens: list[int], ended: bool) -> float:
    """Summed log-probability of ``tokens`` (+ EOS when ended) under decoding's constrained distribution."""
    targets = tokens + [EOS_ID] if ended else tokens
    prefix = torch.tensor([[BOS_ID] + targets[:-1]])
    logits = model.step(prefix, encoded).logits[0]  # (L, V)
    logits[:, list(NEVER_GENERATED)] = float("-inf")
    log_probs = logits.log_softmax(-1)
    return float(log_probs[torch.arange(len(targets)), targets].sum())


def has_repeated_ngram(tokens: list[int], n: int) -> bool:
    ngrams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(ngrams) != len(set(ngrams))


@pytest.fixture(scope="module")
def model() -> ToyModel:
    return ToyModel(vocab_size=12)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_size_one_equals_greedy(model, alpha):
    inputs, lengths = toy_batch(batch=4)
    options = DecodingOptions(max_length=8, length_penalty=alpha)
    greedy = decode(model, inputs, options, lengths)  # beam_size 1 takes the greedy path
    beam = beam_search(model, model.encode(inputs, lengths), options)
    assert [r.tokens for r in beam] == [r.tokens for r in greedy]
    assert [r.score for r in beam] == pytest.approx([r.score for r in greedy], abs=1e-6)
    assert [r.log_prob for r in beam] == pytest.approx([r.log_prob for r in greedy], abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_matches_exhaustive_search(alpha):
    vocab, max_length = 5, 4  # outputs: 3 and 4, then EOS; 31 possible sequences
    toy = ToyModel(vocab_size=vocab, seed=3)
    inputs, lengths = toy_batch(batch=1)
    encoded = toy.encode(inputs, lengths)
    candidates = []
    for length in range(max_length + 1):
        for tokens in itertools.product([3, 4], repeat=length):
            ended = length < max_length
            log_prob = sequence_log_prob(toy, encoded, list(tokens), ended)
            candidates.append((list(tokens), log_prob / (length + ended) ** alpha))
    candidates.sort(key=lambda pair: -pair[1])
    beams = 32  # more than the 24 extensions of the widest step: nothing is pruned
    options = DecodingOptions(max_length=max_length, beam_size=beams, n_best=beams, length_penalty=alpha)
    (result,) = decode(toy, inputs, options, lengths)
    assert result.tokens == candidates[0][0]
    assert result.score == pytest.approx(candidates[0][1], abs=1e-5)
    assert [tokens for tokens, _ in result.n_best] == [tokens for tokens, _ in candidates]
    assert [score for _, score in result.n_best] == pytest.approx([score for _, score in candidates], abs=1e-5)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_batched_equals_one_by_one(model, beam_size):
    inputs, lengths = toy_batch(batch=3)
    options = DecodingOptions(max_length=8, beam_size=beam_size, n_best=beam_size, length_penalty=0.5)
    batched = decode(model, inputs, options, lengths)
    for i, result in enumerate(batched):
        length = int(lengths[i])
        (single,) = decode(model, inputs[i : i + 1, :length], options, lengths[i : i + 1])
        assert single.tokens == result.tokens
        assert single.score == pytest.approx(result.score, abs=1e-5)
        assert [t for t, _ in single.n_best] == [t for t, _ in result.n_best]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_recomputation_equals_cache(model, beam_size):
    inputs, lengths = toy_batch(batch=3)
    options = DecodingOptions(max_length=8, beam_size=beam_size, n_best=beam_size, return_attention=True)
    cached = decode(model, inputs, options, lengths)
    recomputed = decode(model, inputs, replace(options, use_cache=False), lengths)
    for with_cache, without in zip(cached, recomputed, strict=True):
        assert with_cache.tokens == without.tokens
        assert with_cache.score == pytest.approx(without.score, abs=1e-5)
        assert torch.allclose(with_cache.attention, without.attention, atol=1e-5)


def test_no_repeat_ngram_output_has_no_repeated_ngram():
    toy = ToyModel(vocab_size=6, seed=5)
    inputs, lengths = toy_batch(batch=4)
    plain = decode(toy, inputs, DecodingOptions(max_length=20), lengths)
    assert any(has_repeated_ngram(r.tokens, 2) for r in plain)  # the toy model does repeat itself
    for beam_size in (1, 3):
        options = DecodingOptions(max_length=20, beam_size=beam_size, n_best=beam_size, no_repeat_ngram_size=2)
        for result in decode(toy, inputs, options, lengths):
            assert all(not has_repeated_ngram(tokens, 2) for tokens, _ in result.n_best)


def test_no_repeat_ngram_filter_bans_completions():
    tokens = torch.tensor([[BOS_ID, 5, 6, 5, 7, 5], [BOS_ID, 4, 4, 4, 4, 4]])
    banned = NoRepeatNGram(2)(torch.zeros(2, 9), tokens).isinf()
    assert banned[0].nonzero().flatten().tolist() == [6, 7]  # "5 6" and "5 7" already occurred
    assert banned[1].nonzero().flatten().tolist() == [4]
    unigram = NoRepeatNGram(1)(torch.zeros(2, 9), tokens).isinf()
    assert unigram[0].nonzero().flatten().tolist() == [BOS_ID, 5, 6, 7]


def test_top_k_one_sampling_equals_greedy(model):
    inputs, lengths = toy_batch(batch=4)
    greedy = decode(model, inputs, DecodingOptions(max_length=8), lengths)
    sampled = decode(model, inputs, DecodingOptions(max_length=8, temperature=1.5, top_k=1, seed=0), lengths)
    assert [r.tokens for r in sampled] == [r.tokens for r in greedy]
    assert [r.score for r in sampled] == pytest.approx([r.score for r in greedy], abs=1e-6)


def test_sampling_is_seeded(model):
    inputs, lengths = toy_batch(batch=4)
    runs = [
        decode(model, inputs, DecodingOptions(max_length=10, temperature=2.0, seed=seed), lengths) for seed in [7, 7, 8]
    ]
    tokens = [[r.tokens for r in run] for run in runs]
    assert tokens[0] == tokens[1]
    assert tokens[0] != tokens[2]


def test_n_best_sorted_distinct_and_max_length(model):
    inputs, lengths = toy_batch(batch=3)
    options = DecodingOptions(max_length=3, beam_size=5, n_best=5, length_penalty=1.0)
    for result in decode(model, inputs, options, lengths):
        scores = [score for _, score in result.n_best]
        hypotheses = [tuple(tokens) for tokens, _ in result.n_best]
        assert len(result.n_best) == 5
        assert scores == sorted(scores, reverse=True)
        assert len(set(hypotheses)) == len(hypotheses)
        assert (result.tokens, result.score) == result.n_best[0]
        assert all(len(tokens) <= 3 for tokens in hypotheses)
        assert all(t not in (PAD_ID, BOS_ID, EOS_ID) for tokens in hypotheses for t in tokens)


def test_max_length_cuts_unfinished_outputs():
    toy = ToyModel(vocab_size=8, seed=2)
    with torch.no_grad():
        toy.out.bias[EOS_ID] = -1e4  # never ends by itself
    inputs, lengths = toy_batch(batch=2)
    for beam_size in (1, 3):
        results = decode(toy, inputs, DecodingOptions(max_length=5, beam_size=beam_size), lengths)
        assert [len(r.tokens) for r in results] == [5, 5]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_attention_rows_are_the_models_and_sum_to_one(model, beam_size):
    inputs, lengths = toy_batch(batch=3)
    options = DecodingOptions(max_length=6, beam_size=beam_size, return_attention=True)
    encoded = model.encode(inputs, lengths)
    for i, result in enumerate(decode(model, inputs, options, lengths)):
        valid = int(lengths[i])
        assert result.attention.shape == (len(result.tokens), valid)
        assert torch.allclose(result.attention.sum(-1), torch.ones(len(result.tokens)), atol=1e-5)
        example = SequenceOutput(encoded.memory[i : i + 1], encoded.mask[i : i + 1])
        prefix = torch.tensor([[BOS_ID] + result.tokens[:-1]]) if result.tokens else None
        if prefix is not None:
            expected = model.step(prefix, example, return_attention=True).attention[0, :, :valid]
            assert torch.allclose(result.attention, expected, atol=1e-5)


def test_filters_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert TopK(2)(logits, None).isfinite().tolist() == [[True, True, False, False]]
    assert TopP(0.75)(logits, None).isfinite().tolist() == [[True, True, False, False]]
    assert TopP(0.8)(logits, None).isfinite().tolist() == [[True, True, False, False]]
    assert TopP(0.81)(logits, None).isfinite().tolist() == [[True, True, True, False]]
    assert TopP(0.1)(logits, None).isfinite().tolist() == [[True, False, False, False]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 2, "n_best": 3}, "n_best"),
        ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
        ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
        ({"max_length": 0}, "max_length"),
        ({"length_penalty": -1.0}, "length_penalty"),
        ({"temperature": 1.0, "beam_size": 2}, "sampling"),
        ({"top_k": 5}, "temperature"),
        ({"temperature": -0.5}, "temperature"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, message):
    with pytest.raises(DecodingOptionsError, match=message):
        DecodingOptions(**kwargs)


def test_decode_rejects_a_model_without_step():
    with pytest.raises(TypeError, match="step"):
        decode(nn.Linear(2, 2), torch.zeros(1, 2))


def test_finished_outputs_exclude_specials(model):
    inputs, lengths = toy_batch(batch=4)
    for result in decode(model, inputs, DecodingOptions(max_length=12, beam_size=2), lengths):
        assert not math.isnan(result.score)
        assert all(t not in (PAD_ID, BOS_ID, EOS_ID) for t in result.tokens)


REAL_VOCAB = 20


def real_model_batch(encoder: str) -> tuple[Tensor, Tensor | None]:
    """Small inputs for an image or text encoder: (inputs, lengths)."""
    if encoder.startswith("cnn"):
        return torch.randn(2, 3, 32, 32), None
    return torch.randint(4, REAL_VOCAB, (3, 6)), torch.tensor([6, 4, 2])


SMALL_RNN = {"embed_dim": 16, "hidden_size": 32}


@pytest.mark.parametrize(
    ("encoder", "decoder", "decoder_args"),
    [
        ("cnn_tiny", "transformer_tiny", {}),
        ("text_gru_tiny", "transformer_tiny", {}),
        ("text_gru_tiny", "rnn_attention", SMALL_RNN),
        ("text_gru_tiny", "rnn", {**SMALL_RNN, "cell": "gru"}),
    ],
)
def test_real_decoders_beam_one_equals_greedy_and_cache_equals_recomputation(encoder, decoder, decoder_args):
    from multimodal_s2s import create_model

    encoder_args = {"vocab_size": REAL_VOCAB} if encoder.startswith("text") else {}
    model = create_model(encoder, decoder, encoder_args, decoder_args, vocab_size=REAL_VOCAB).eval()
    inputs, lengths = real_model_batch(encoder)
    options = DecodingOptions(max_length=6)
    greedy = decode(model, inputs, options, lengths)
    with torch.no_grad():
        beam_one = beam_search(model, model.encode(inputs, lengths), options)
    assert [r.tokens for r in beam_one] == [r.tokens for r in greedy]
    assert [r.score for r in beam_one] == pytest.approx([r.score for r in greedy], abs=1e-5)
    attends = decoder != "rnn"
    for beam_size in (1, 3):
        cached_options = DecodingOptions(max_length=6, beam_size=beam_size, n_best=beam_size, return_attention=True)
        cached = decode(model, inputs, cached_options, lengths)
        recomputed = decode(model, inputs, replace(cached_options, use_cache=False), lengths)
        for i, (with_cache, without) in enumerate(zip(cached, recomputed, strict=True)):
            assert with_cache.tokens == without.tokens
            assert with_cache.score == pytest.approx(without.score, abs=1e-4)
            if not attends:
                assert with_cache.attention is None
                continue
            valid = inputs.shape[-1] if lengths is None else int(lengths[i])
            if encoder.startswith("cnn"):
                valid = with_cache.attention.shape[1]  # every grid cell is valid
            assert with_cache.attention.shape == (len(with_cache.tokens), valid)
            assert torch.allclose(with_cache.attention, without.attention, atol=1e-4)
            assert torch.allclose(with_cache.attention.sum(-1), torch.ones(len(with_cache.tokens)), atol=1e-4)


def test_min_length_holds_back_eos():
    from multimodal_s2s import create_model

    model = create_model("cnn_tiny", "transformer_tiny", vocab_size=6).eval()
    images = torch.randn(2, 3, 32, 32)
    for beam_size in (1, 3):
        results = decode(model, images, DecodingOptions(min_length=7, max_length=9, beam_size=beam_size))
        assert all(7 <= len(r.tokens) <= 9 for r in results)
    with pytest.raises(DecodingOptionsError, match="min_length"):
        DecodingOptions(min_length=10, max_length=9)
