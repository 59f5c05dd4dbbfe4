"""whisper's tokenizer in the suite: its ids a permutation of whisper's with PAD, BOS, EOS, UNK first, the same
pieces as whisper's own tokenizer, carried whole through to_dict / from_dict."""

from __future__ import annotations

from pathlib import Path

import pytest

from multimodal_s2s.tokenizers import TokenizerFormatError, WhisperTokenizer, tokenizer_from_dict
from multimodal_s2s.types import BOS_ID, EOS_ID, PAD_ID, UNK_ID

whisper_tokenizer = pytest.importorskip("whisper.tokenizer", reason="openai-whisper ships the vocabulary files")
TEXTS = ("Hello world, ça va?", "The 3 cats' toys — 42%!", "  two  spaces", "日本語のテキスト")


@pytest.fixture(scope="module", params=["multilingual", "gpt2"])
def pair(request):
    multilingual = request.param == "multilingual"
    ranks = Path(whisper_tokenizer.__file__).parent / "assets" / f"{request.param}.tiktoken"
    ours = WhisperTokenizer(request.param, ranks.read_bytes(), list(whisper_tokenizer.LANGUAGES)[:99])
    return ours, whisper_tokenizer.get_tokenizer(multilingual, num_languages=99)


def test_ids_are_whisper_ids_in_the_suite_order(pair):
    ours, theirs = pair
    assert ours.vocab_size == theirs.encoding.n_vocab and sorted(ours.order) == list(range(ours.vocab_size))
    assert ours.to_whisper([PAD_ID, BOS_ID, EOS_ID, UNK_ID]) == [theirs.sot_prev, theirs.sot, theirs.eot, theirs.sot_lm]
    assert ours.token_id("<|notimestamps|>") == ours.to_suite([theirs.no_timestamps])[0]


def test_encode_and_decode_as_whisper_does(pair):
    ours, theirs = pair
    for text in TEXTS:
        ids = ours.encode(text)
        assert ours.to_whisper(ids) == theirs.encode(text if text.startswith(" ") else " " + text)
        assert ours.decode(ids) == text.strip()
    with_specials = [BOS_ID, *ours.encode("hi"), ours.token_id("<|0.00|>"), EOS_ID]
    assert ours.decode(with_specials) == "hi"
    assert ours.encode("hi", add_special=True) == [BOS_ID, *ours.encode("hi"), EOS_ID]


def test_round_trip_through_a_dict(pair):
    ours, _ = pair
    rebuilt = tokenizer_from_dict(ours.to_dict())
    assert rebuilt == ours and rebuilt.encode(TEXTS[0]) == ours.encode(TEXTS[0])
    with pytest.raises(TokenizerFormatError, match="compressed base64"):
        tokenizer_from_dict({**ours.to_dict(), "ranks": "bm90IHpsaWI="})
    with pytest.raises(TokenizerFormatError, match="a whisper encoding is one of"):
        tokenizer_from_dict({**ours.to_dict(), "encoding": "cl100k"})
