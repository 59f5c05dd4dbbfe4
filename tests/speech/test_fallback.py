"""Window checks and whisper's fallback: looping or unsure decodings are re-decoded at rising temperatures,
silence is dropped without retries, what fails every try is dropped (or kept on request)."""

from __future__ import annotations

import math

import pytest
import torch

from multimodal_s2s.decoders.base import StepOutput
from multimodal_s2s.decoding import DecodingOptions, DecodingResult
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.speech.fallback import (
    FallbackPolicy,
    QualityThresholds,
    WindowDecoding,
    compression_ratio,
    decode_with_fallback,
    failed_checks,
    longest_ngram_repeat,
    no_speech_probabilities,
)
from multimodal_s2s.tokenizers.vocabulary import CharTokenizer
from multimodal_s2s.types import BOS_ID, EOS_ID, SequenceOutput


def test_compression_ratio_flags_looping_text():
    assert compression_ratio("") == 0.0
    assert compression_ratio("set the timer to five minutes") < 2.4
    assert compression_ratio("thank you " * 30) > 2.4


@pytest.mark.parametrize(
    ("words", "expected"),
    [("", 0), ("a", 1), ("a b c", 1), ("a a a b", 3), ("x a b a b a b y", 3), ("a b c d a b c d", 2)],
)
def test_longest_ngram_repeat(words, expected):
    assert longest_ngram_repeat(words.split()) == expected


def test_failed_checks_and_thresholds():
    good = WindowDecoding("one two", [5, 6], avg_logprob=-0.2)
    assert failed_checks(good, QualityThresholds()) == []
    looping = WindowDecoding("one " * 12, [5] * 12, avg_logprob=-2.0)
    assert failed_checks(looping, QualityThresholds()) == ["compression_ratio", "logprob", "ngram_repeats"]
    off = QualityThresholds(compression_ratio=None, logprob=None, max_ngram_repeats=None)
    assert failed_checks(looping, off) == []
    in_a_word = WindowDecoding("aaaaaaaaaaaaaaaaaaaaaaaa b", [7] * 24 + [3, 8], avg_logprob=-0.3)  # a character loop
    assert in_a_word.compression_ratio < 2.4 and failed_checks(in_a_word, QualityThresholds()) == ["ngram_repeats"]


def test_from_result_averages_over_tokens_and_eos():
    tokenizer = CharTokenizer.train(["ab"])
    tokens = tokenizer.encode("ab")
    decoding = WindowDecoding.from_result(DecodingResult(tokens, -0.9, -0.9), tokenizer, no_speech_prob=0.1)
    assert decoding.text == "ab" and decoding.avg_logprob == pytest.approx(-0.3) and decoding.no_speech_prob == 0.1


class ScriptedDecoder:
    """Decodes window names by a script: name -> {temperature: (text, avg_logprob, no_speech_prob)}."""

    def __init__(self, script: dict[str, dict[float, tuple[str, float, float | None]]]):
        self.script, self.calls = script, []

    def __call__(self, windows: list[str], options: DecodingOptions) -> list[WindowDecoding]:
        self.calls.append((options.temperature, options.beam_size, list(windows)))
        results = []
        for name in windows:
            text, logprob, no_speech = self.script[name].get(options.temperature, self.script[name][0.0])
            results.append(WindowDecoding(text, [], logprob, no_speech))
        return results


def test_fallback_re_decodes_only_the_failing_windows():
    decoder = ScriptedDecoder({
        "clear": {0.0: ("one two", -0.1, 0.01)},
        "unsure": {0.0: ("one one", -1.5, 0.1), 0.2: ("one", -0.5, 0.1)},
        "silence": {0.0: ("oh", -2.0, 0.9)},
        "noise": {0.0: ("six six six six six six", -3.0, 0.2)},
    })
    policy = FallbackPolicy(temperatures=(0.0, 0.2, 0.4), best_of=2)
    options = DecodingOptions(beam_size=3)
    results = decode_with_fallback(["clear", "unsure", "silence", "noise"], decoder, options, policy)
    assert results[0].text == "one two" and results[0].temperature == 0.0
    assert results[1].text == "one" and results[1].temperature == 0.2
    assert results[2] is None  # silence: dropped, no retry
    assert results[3].text == "" and results[3].tokens == []  # noise fails every try: emptied, not silence
    assert decoder.calls[0] == (0.0, 3, ["clear", "unsure", "silence", "noise"])
    assert decoder.calls[1:3] == [(0.2, 1, ["unsure", "noise"])] * 2  # best of 2 samples, sampling is greedy
    assert decoder.calls[3:] == [(0.4, 1, ["noise"])] * 2
    kept = decode_with_fallback(["noise"], decoder, options, FallbackPolicy(temperatures=(0.0,), drop_failed=False))
    assert kept[0].text.startswith("six")


def test_fallback_policy_is_checked():
    with pytest.raises(ValueError, match="temperatures"):
        FallbackPolicy(temperatures=())
    with pytest.raises(ValueError, match="best_of"):
        FallbackPolicy(best_of=0)


def test_no_speech_probability_of_a_model():
    encoder_args = {"d_model": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0}
    decoder_args = {"d_model": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64, "dropout": 0.0}
    model = build_model(ModelConfig("audio_transformer_tiny", "transformer", encoder_args, decoder_args, 12)).eval()
    encoded = model.encode(torch.randn(2, 80, 50), torch.tensor([50, 30]))
    probabilities = no_speech_probabilities(model, encoded)
    assert probabilities.shape == (2,) and bool(((probabilities > 0) & (probabilities < 0.5)).all())


class FixedLogits:
    """A text model whose first step scores EOS log(3) and the 3 other ids 0: P(EOS) = 3 / 6."""

    vocab_size = 4

    def step(self, tokens, encoded, cache=None, return_attention=False):
        assert tokens.tolist() == [[BOS_ID]] * encoded.memory.shape[0]
        logits = torch.zeros(tokens.shape[0], 1, self.vocab_size)
        logits[:, :, EOS_ID] = math.log(3)
        return StepOutput(logits, cache)


def test_no_speech_probability_reads_eos_after_bos():
    encoded = SequenceOutput(torch.zeros(3, 5, 8), torch.ones(3, 5, dtype=torch.bool))
    assert no_speech_probabilities(FixedLogits(), encoded).tolist() == pytest.approx([0.5] * 3)
