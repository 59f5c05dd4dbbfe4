"""Tokenizers with an explicit vocabulary: characters and words."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from multimodal_s2s.tokenizers.base import Tokenizer, TokenizerFormatError, check_specials
from multimodal_s2s.tokenizers.special import SPECIAL_TOKENS, UNK_ID

#: A word is a run of letters, digits or underscores; every other non-space character stands alone.
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


class VocabularyTokenizer(Tokenizer):
    """Splits text into units (``split``), maps each to its id (UNK when unknown), joins them back (``join``).

    ``tokens[i]`` is the unit of id i; the first four are SPECIAL_TOKENS.
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        check_specials(tokens)
        if len(set(tokens)) != len(tokens):
            raise TokenizerFormatError("vocabulary has duplicate tokens")
        self.tokens = tokens
        self.token_to_id = {token: i for i, token in enumerate(tokens)}

    @abstractmethod
    def split(self, text: str) -> list[str]:
        """The units of ``text``."""

    @abstractmethod
    def join(self, units: list[str]) -> str:
        """Text of known units."""

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def words(self) -> list[str]:
        """The units of the vocabulary besides the special tokens, in id order."""
        return self.tokens[len(self.special_tokens) :]

    def _encode(self, text: str) -> list[int]:
        return [self.token_to_id.get(unit, UNK_ID) for unit in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        special = len(SPECIAL_TOKENS)
        out_of_range = [i for i in ids if not 0 <= i < len(self.tokens)]
        if out_of_range:
            raise ValueError(f"ids {out_of_range[:5]} are outside the vocabulary (size {len(self.tokens)})")
        return self.join([self.tokens[i] for i in ids if i >= special])

    @staticmethod
    def _select(counts: Counter[str], min_frequency: int, max_vocab_size: int | None) -> list[str]:
        """SPECIAL_TOKENS, then units seen >= min_frequency times, most frequent first (ties: sorted),
        cut so that the vocabulary has at most ``max_vocab_size`` entries."""
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        if max_vocab_size is not None and max_vocab_size < len(SPECIAL_TOKENS):
            raise ValueError(f"max_vocab_size must be >= {len(SPECIAL_TOKENS)} (the special tokens)")
        frequent = [unit for unit, count in counts.items() if count >= min_frequency and unit not in SPECIAL_TOKENS]
        kept = sorted(frequent, key=lambda unit: (-counts[unit], unit))
        room = None if max_vocab_size is None else max_vocab_size - len(SPECIAL_TOKENS)
        return [*SPECIAL_TOKENS, *kept[:room]]


class CharTokenizer(VocabularyTokenizer):
    """One id per character: ``decode(encode(s)) == s`` for every string made of training characters
    (others become <unk> and are dropped by decode)."""

    type_name = "char"

    def split(self, text: str) -> list[str]:
        return list(text)

    def join(self, units: list[str]) -> str:
        return "".join(units)

    @classmethod
    def train(cls, corpus: Iterable[str], min_frequency: int = 1, max_vocab_size: int | None = None) -> CharTokenizer:
        """Vocabulary of the corpus's characters (see ``VocabularyTokenizer._select``)."""
        counts = _count_units(corpus, cls(SPECIAL_TOKENS).split)
        return cls(cls._select(counts, min_frequency, max_vocab_size))

    def _content(self) -> dict[str, Any]:
        return {"tokens": self.tokens}

    @classmethod
    def _from_content(cls, content: dict[str, Any]) -> CharTokenizer:
        tokens = _field(content, "tokens", list)
        if not all(isinstance(t, str) and (len(t) == 1 or t in SPECIAL_TOKENS) for t in tokens):
            raise TokenizerFormatError("a char tokenizer's tokens must be single characters")
        return cls(tokens)


class WordTokenizer(VocabularyTokenizer):
    """One id per word or punctuation mark.

    Normalization: optional lowercasing, then ``WORD_PATTERN``: runs of letters/digits/underscores are
    words, each other non-space character is its own token, whitespace only separates. ``decode``
    joins tokens with single spaces, so it returns the normalized text ("Hi, you!" -> "hi , you !").
    """

    type_name = "word"

    def __init__(self, tokens: Sequence[str], lowercase: bool = True):
        super().__init__(tokens)
        self.lowercase = lowercase

    def split(self, text: str) -> list[str]:
        return WORD_PATTERN.findall(text.lower() if self.lowercase else text)

    def join(self, units: list[str]) -> str:
        return " ".join(units)

    @classmethod
    def train(
        cls, corpus: Iterable[str], min_frequency: int = 1, max_vocab_size: int | None = None, lowercase: bool = True
    ) -> WordTokenizer:
        """Vocabulary of the corpus's words (see ``VocabularyTokenizer._select``)."""
        counts = _count_units(corpus, cls(SPECIAL_TOKENS, lowercase).split)
        return cls(cls._select(counts, min_frequency, max_vocab_size), lowercase)

    def _content(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "lowercase": self.lowercase}

    @classmethod
    def _from_content(cls, content: dict[str, Any]) -> WordTokenizer:
        tokens = _field(content, "tokens", list)
        if not all(isinstance(t, str) for t in tokens):
            raise TokenizerFormatError("a word tokenizer's tokens must be strings")
        return cls(tokens, _field(content, "lowercase", bool))


def _count_units(corpus: Iterable[str], split: Callable[[str], list[str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in corpus:
        if not isinstance(text, str):
            raise TypeError(f"the corpus must yield strings, got {type(text).__name__}")
        counts.update(split(text))
    return counts


def _field(content: dict[str, Any], name: str, kind: type) -> Any:
    if not isinstance(content.get(name), kind):
        raise TokenizerFormatError(f"field {name!r} missing or not a {kind.__name__}")
    return content[name]
