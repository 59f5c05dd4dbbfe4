"""Character, word and BPE tokenizers: round trips, fixed special ids, one save/load format, clear errors."""

from __future__ import annotations

import json

import pytest

from multimodal_s2s.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    TokenizerFormatError,
    WordTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)
from multimodal_s2s.types import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID

CORPUS = [
    "A man rides a horse.",
    "Two dogs play in the snow!",
    "a man  rides\ta bike, fast.",
    "Die Katze schläft; le café est chaud.",
    "the dog, the cat and the horse",
]


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Tokenizer]:
    return {
        "char": CharTokenizer.train(CORPUS),
        "word": WordTokenizer.train(CORPUS),
        "bpe": BPETokenizer.train(CORPUS, vocab_size=300, min_frequency=2),
    }


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_special_tokens_at_fixed_ids(tokenizers, kind):
    tokenizer = tokenizers[kind]
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    ids = tokenizer.encode("a man", add_special=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert ids[1:-1] == tokenizer.encode("a man")
    assert all(i > UNK_ID for i in ids[1:-1])
    assert tokenizer.decode([PAD_ID, BOS_ID, *ids[1:-1], EOS_ID, PAD_ID]) == tokenizer.decode(ids[1:-1])
    assert tokenizer.vocab_size > len(SPECIAL_TOKENS)


@pytest.mark.parametrize("text", CORPUS + ["  leading and trailing  ", "", "horse dog cat"])
def test_char_round_trip_is_exact(tokenizers, text):
    tokenizer = tokenizers["char"]
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert len(tokenizer.encode(text)) == len(text)


def test_char_unknown_characters_become_unk(tokenizers):
    tokenizer = tokenizers["char"]
    ids = tokenizer.encode("a€b")
    assert ids[1] == UNK_ID and UNK_ID not in (ids[0], ids[2])
    assert tokenizer.decode(ids) == "ab"


def test_char_vocabulary_limits():
    counts_text = ["aaaab", "aac"]  # a: 6, b: 1, c: 1
    assert CharTokenizer.train(counts_text, min_frequency=2).tokens == [*SPECIAL_TOKENS, "a"]
    assert CharTokenizer.train(counts_text, max_vocab_size=6).tokens == [*SPECIAL_TOKENS, "a", "b"]


def test_word_normalization_and_unknowns(tokenizers):
    tokenizer = tokenizers["word"]
    assert tokenizer.split("Two DOGS,play!") == ["two", "dogs", ",", "play", "!"]
    assert tokenizer.decode(tokenizer.encode("The  dog, the CAT.")) == "the dog , the cat ."
    ids = tokenizer.encode("the zebra")
    assert ids[1] == UNK_ID and ids[0] != UNK_ID
    cased = WordTokenizer.train(CORPUS, lowercase=False)
    assert "A" in cased.tokens and "A" not in tokenizer.tokens


def test_word_min_frequency_and_max_vocab_size():
    # "a" and "the" occur 4 times (ties sorted), "." 3 times, everything else at most twice.
    assert WordTokenizer.train(CORPUS, min_frequency=3).tokens == [*SPECIAL_TOKENS, "a", "the", "."]
    assert WordTokenizer.train(CORPUS, max_vocab_size=6).tokens == [*SPECIAL_TOKENS, "a", "the"]
    with pytest.raises(ValueError, match="max_vocab_size"):
        WordTokenizer.train(CORPUS, max_vocab_size=2)


@pytest.mark.parametrize("text", CORPUS + ["  spaces   everywhere ", "tabs\tand\nnewlines", "unseen ☃ symbols 😀", ""])
def test_bpe_round_trip_is_exact(tokenizers, text):
    tokenizer = tokenizers["bpe"]
    ids = tokenizer.encode(text)
    assert UNK_ID not in ids  # the full byte alphabet covers everything
    assert tokenizer.decode(ids) == text


def test_bpe_merges_frequent_words(tokenizers):
    tokenizer = tokenizers["bpe"]
    assert len(tokenizer.encode("the horse")) < len(b"the horse")  # merges, not bytes
    assert tokenizer.vocab_size <= 300


def test_bpe_treats_special_names_in_text_as_text(tokenizers):
    tokenizer = tokenizers["bpe"]
    ids = tokenizer.encode("a <eos> b")
    assert EOS_ID not in ids
    assert tokenizer.decode(ids) == "a <eos> b"


def test_bpe_small_alphabet_uses_unk():
    tokenizer = BPETokenizer.train(["abab abab"], vocab_size=20, min_frequency=1, full_alphabet=False)
    assert tokenizer.vocab_size <= 20
    assert UNK_ID in tokenizer.encode("abz")
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train(CORPUS, vocab_size=100)


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_save_load_round_trip(tokenizers, kind, tmp_path):
    tokenizer = tokenizers[kind]
    path = tmp_path / f"{kind}.json"
    tokenizer.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == kind
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert loaded == tokenizer
    assert loaded.to_dict() == tokenizer.to_dict()
    for text in CORPUS:
        assert loaded.encode(text) == tokenizer.encode(text)
    rebuilt = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert rebuilt.encode("a <eos> man") == tokenizer.encode("a <eos> man")
    assert type(tokenizer).from_dict(tokenizer.to_dict()) == tokenizer


def test_load_errors_name_file_and_problem(tmp_path, tokenizers):
    missing = tmp_path / "missing.json"
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_tokenizer(missing)
    not_json = tmp_path / "broken.json"
    not_json.write_text("{not json")
    with pytest.raises(TokenizerFormatError, match="broken.json.*not valid JSON"):
        load_tokenizer(not_json)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"type": "wordpiece", "version": 1}))
    with pytest.raises(
        TokenizerFormatError,
        match=r"unknown.json.*unknown tokenizer type 'wordpiece'.*bpe, char, sentencepiece, whisper, word",
    ):
        load_tokenizer(unknown)
    bad_vocab = tmp_path / "bad_vocab.json"
    bad_vocab.write_text(json.dumps({"type": "char", "version": 1, "tokens": ["a", "b"]}))
    with pytest.raises(TokenizerFormatError, match="bad_vocab.json.*special tokens"):
        load_tokenizer(bad_vocab)
    bad_bpe = {"type": "bpe", "version": 1, "hf_tokenizer": "{broken"}
    with pytest.raises(TokenizerFormatError, match="hf_tokenizer"):
        tokenizer_from_dict(bad_bpe)
    with pytest.raises(TokenizerFormatError, match="CharTokenizer"):
        CharTokenizer.from_dict(tokenizers["word"].to_dict())


def test_decode_rejects_ids_outside_the_vocabulary(tokenizers):
    for tokenizer in tokenizers.values():
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tokenizer.decode([tokenizer.vocab_size])


def test_tokenizers_declare_their_special_tokens_and_a_vocabulary_lists_the_rest():
    words = WordTokenizer.train(["a < b", "<b> a"])
    assert words.special_tokens == SPECIAL_TOKENS == tuple(words.tokens[: len(SPECIAL_TOKENS)])
    assert sorted(words.words) == sorted(["a", "b", "<", ">"])  # "<" is a word here, not a special token
    assert CharTokenizer.train(["ab"]).words == ["a", "b"]
