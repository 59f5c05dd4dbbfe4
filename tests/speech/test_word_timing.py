"""Word timestamps: DTW finds the cheapest path, planted attention and CTC spikes give the planted times, words
are in order and inside their window for any model output, and the row duration comes from the encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multimodal_s2s.encoders.audio_transformer import AudioTransformerEncoder
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.speech.word_timing import (
    AlignmentError,
    WindowTokens,
    attention_word_timestamps,
    ctc_word_timestamps,
    dtw_path,
    seconds_per_row,
    token_start_rows,
    word_groups,
)
from multimodal_s2s.tokenizers import BPETokenizer
from multimodal_s2s.tokenizers.vocabulary import CharTokenizer, WordTokenizer

CORPUS = ["one two three", "four five six seven", "eight nine zero oh"] * 5


def _brute_force_dtw_cost(cost: np.ndarray) -> float:
    rows, columns = cost.shape
    total = np.full((rows + 1, columns + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, rows + 1):
        for j in range(1, columns + 1):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
    return float(total[rows, columns])


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (4, 9), (9, 4), (12, 30)])
def test_dtw_path_is_the_cheapest_monotonic_path(shape):
    cost = np.random.default_rng(sum(shape)).standard_normal(shape)
    rows, columns = dtw_path(cost)
    assert (rows[0], columns[0]) == (0, 0) and (rows[-1], columns[-1]) == (shape[0] - 1, shape[1] - 1)
    steps = np.stack([np.diff(rows), np.diff(columns)], axis=1)
    assert all(tuple(step) in {(1, 1), (1, 0), (0, 1)} for step in steps)
    assert cost[rows, columns].sum() == pytest.approx(_brute_force_dtw_cost(cost))


def test_planted_attention_gives_each_token_its_rows():
    starts = [0, 5, 6, 14, 20]  # first memory row of 4 tokens and the EOS, over 30 rows
    attention = torch.full((5, 30), 0.01)
    for token, (first, last) in enumerate(zip(starts, [*starts[1:], 30], strict=True)):
        attention[token, first:last] = 1.0
    attention = attention / attention.sum(dim=1, keepdim=True)
    assert token_start_rows(attention, filter_width=1).tolist() == starts


def test_word_groups_for_each_tokenizer():
    expected = ["three", "four", "five"]
    for tokenizer in (CharTokenizer.train(CORPUS), WordTokenizer.train(CORPUS), BPETokenizer.train(CORPUS, 280)):
        tokens = tokenizer.encode("three four five")
        groups = word_groups(tokens, tokenizer)
        assert [word for word, _ in groups] == expected
        positions = [p for _, group in groups for p in group]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert "".join(tokenizer.decode([tokens[p]]) for p in groups[1][1]).strip() == "four"


def test_ctc_spikes_give_word_times():
    tokenizer = CharTokenizer.train(CORPUS)
    tokens = tokenizer.encode("one two")
    log_probs = torch.full((60, tokenizer.vocab_size), -20.0)
    log_probs[:, 0] = 0.0  # blank everywhere...
    spikes = [10, 12, 14, 20, 30, 32, 34]  # ...but one frame per character ("one", " ", "two")
    for frame, token in zip(spikes, tokens, strict=True):
        log_probs[frame] = -20.0
        log_probs[frame, token] = 0.0
    window = WindowTokens(tokens, start=2.0, end=4.4)
    words = ctc_word_timestamps(log_probs.log_softmax(dim=-1), window, tokenizer, row_seconds=0.04)
    assert [w.word for w in words] == ["one", "two"]
    assert [(w.start, w.end) for w in words] == [(2.4, 2.6), (3.2, 3.4)]
    assert all(w.probability == pytest.approx(1.0, abs=1e-3) for w in words)
    too_short = WindowTokens(tokens, start=0.0, end=0.1)
    assert ctc_word_timestamps(log_probs[:5].log_softmax(dim=-1), too_short, tokenizer, 0.04) is None


def test_attention_words_are_ordered_and_inside_their_window():
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(CORPUS)
    encoder_args = {"d_model": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0}
    decoder_args = {"d_model": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64, "dropout": 0.0}
    config = ModelConfig("audio_transformer_tiny", "transformer", encoder_args, decoder_args, tokenizer.vocab_size)
    model = build_model(config).eval()
    features, lengths = torch.randn(3, 80, 200), torch.tensor([200, 120, 60])
    encoded = model.encode(features, lengths)
    texts = ["one two three", "", "four five six seven eight"]
    windows = [
        WindowTokens(tokenizer.encode(t), start, start + n / 100)
        for t, start, n in zip(texts, [0.0, 5.0, 9.5], lengths.tolist(), strict=True)
    ]
    row_seconds = seconds_per_row(model.encoder.info)
    all_words = attention_word_timestamps(model, encoded, windows, tokenizer, row_seconds)
    assert [[w.word for w in words] for words in all_words] == [t.split() for t in texts]
    for words, window in zip(all_words, windows, strict=True):
        times = [t for w in words for t in (w.start, w.end)]
        assert times == sorted(times) and all(window.start <= t <= window.end for t in times)
        assert all(0 <= w.probability <= 1 for w in words)


def test_row_duration_comes_from_the_encoder():
    assert seconds_per_row(AudioTransformerEncoder(d_model=32, num_heads=2, num_layers=1).info) == 0.04
    assert seconds_per_row(AudioTransformerEncoder(d_model=32, num_heads=2, num_layers=1, subsampling=8).info) == 0.08
    with pytest.raises(AlignmentError, match="frames_per_row"):
        seconds_per_row(AudioTransformerEncoder(d_model=32, num_heads=2, num_layers=1, frontend="patch").info)
