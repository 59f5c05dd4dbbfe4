"""whisper's decoding rules as options of the suite's search: its beam search (``beam_rule="whisper"``) equals
whisper's own ``BeamSearchDecoder`` + ``MaximumLikelihoodRanker`` driven over the same toy model; suppressed
tokens and blank suppression at the first step."""

from __future__ import annotations

import pytest
import torch
from test_decoding import ToyModel, toy_batch

from multimodal_s2s.checkpoint import DecodingDefaults
from multimodal_s2s.decoding import DecodingOptions, DecodingOptionsError, decode
from multimodal_s2s.decoding.filters import NEVER_GENERATED, SuppressAtStart
from multimodal_s2s.types import BOS_ID, EOS_ID

#: whisper's ranker divides with numpy, which warns about torch scalars.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")


class _Inference:
    """What whisper's BeamSearchDecoder asks of its inference: nothing, the toy model recomputes."""

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        pass


def whisper_beam(model: ToyModel, inputs, lengths, beams: int, max_length: int) -> list[list[int]]:
    """whisper's beam search and ranking (decoding.BeamSearchDecoder, MaximumLikelihoodRanker(None))."""
    decoding = pytest.importorskip("whisper.decoding", reason="openai-whisper is the reference")
    encoded = model.encode(inputs, lengths)
    search = decoding.BeamSearchDecoder(beams, EOS_ID, _Inference())
    batch = inputs.shape[0]
    tokens = torch.full((batch * beams, 1), BOS_ID)
    sum_logprobs = torch.zeros(batch * beams)
    for _ in range(max_length):
        logits = model.step(tokens, encoded).logits[:, -1].clone()
        logits[:, list(NEVER_GENERATED)] = float("-inf")
        tokens, completed = search.update(tokens, logits, sum_logprobs)
        if completed:
            break
    candidates, scores = search.finalize(tokens.view(batch, beams, -1), sum_logprobs.view(batch, beams))
    outputs = [[sequence[1:].tolist() for sequence in row] for row in candidates]
    outputs = [[sequence[: sequence.index(EOS_ID)] for sequence in row] for row in outputs]
    chosen = decoding.MaximumLikelihoodRanker(None).rank(outputs, scores)
    return [row[index] for row, index in zip(outputs, chosen, strict=True)]


@pytest.mark.parametrize(("beams", "max_length"), [(2, 6), (4, 10), (5, 7)])
def test_whisper_beam_rule_equals_whisper_beam_search(beams, max_length):
    model = ToyModel(vocab_size=12)
    inputs, lengths = toy_batch(batch=8, seed=3)
    expected = whisper_beam(model, inputs, lengths, beams, max_length)
    options = DecodingOptions(max_length=max_length, beam_size=beams, length_penalty=1.0, beam_rule="whisper")
    assert [result.tokens for result in decode(model, inputs, options, lengths)] == expected
    assert any(len(tokens) < max_length for tokens in expected)


def test_the_two_beam_rules_differ():
    """HF's rule (the suite's default) and whisper's choose differently on this toy: the option matters."""
    model = ToyModel(vocab_size=12)
    inputs, lengths = toy_batch(batch=8, seed=3)
    results = [decode(model, inputs, DecodingOptions(max_length=10, beam_size=4, length_penalty=1.0, beam_rule=rule),
                      lengths) for rule in ("hf", "whisper")]
    assert [r.tokens for r in results[0]] != [r.tokens for r in results[1]]


def test_suppressed_tokens_never_appear_and_blank_waits_for_the_second_step():
    model = ToyModel(vocab_size=12)
    inputs, lengths = toy_batch(batch=6)
    plain = decode(model, inputs, DecodingOptions(max_length=8), lengths)
    common = max(range(3, 12), key=lambda t: sum(r.tokens.count(t) for r in plain))
    options = DecodingOptions(max_length=8, suppress_tokens=(common,), suppress_at_start=(EOS_ID, 5))
    for beams in (1, 3):
        for result in decode(model, inputs, DecodingOptions(**{**options.__dict__, "beam_size": beams}), lengths):
            assert common not in result.tokens and result.tokens and result.tokens[0] != 5
    logits, tokens = torch.zeros(2, 12), torch.ones(2, 1, dtype=torch.long)
    assert SuppressAtStart([5])(logits, tokens)[:, 5].isinf().all()
    assert SuppressAtStart([5])(logits, torch.ones(2, 2, dtype=torch.long)).isfinite().all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"beam_rule": "fairseq"}, "beam_rule must be one of hf, whisper"),
     ({"suppress_tokens": [3]}, "suppress_tokens must be a tuple"),
     ({"suppress_at_start": (-1,)}, "suppress_at_start"),
     ({"length_offset": -1}, "length_offset must be an integer >= 0")],
)
def test_bad_rule_options_raise_clear_errors(kwargs, message):
    with pytest.raises(DecodingOptionsError, match=message):
        DecodingOptions(**kwargs)


def test_decoding_defaults_carry_the_rules_as_tuples():
    defaults = DecodingDefaults(suppress_tokens=[4, 5], suppress_at_start=[2], beam_rule="whisper")
    assert defaults.rules() == {"suppress_tokens": (4, 5), "suppress_at_start": (2,), "beam_rule": "whisper",
                                "early_stopping": False, "renormalize": True, "length_offset": 0}
