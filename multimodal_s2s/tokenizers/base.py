"""The tokenizer interface and its one file format.

Every tokenizer maps text to ids and back with the special tokens of ``types.SPECIAL_TOKENS`` at
ids PAD_ID, BOS_ID, EOS_ID, UNK_ID (0..3). ``to_dict()`` gives a JSON-serializable dict with a
``"type"`` field (so a checkpoint can carry the tokenizer); ``save(path)`` writes it as JSON and
``load_tokenizer(path)`` reads any of them back.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from multimodal_s2s.tokenizers.special import BOS_ID, EOS_ID, SPECIAL_TOKENS

#: Version of the dict / JSON layout written by ``to_dict``.
FORMAT_VERSION = 1
#: Tokenizer type name -> the module that defines it (imported when a tokenizer of that type is read).
TYPE_MODULES = {
    "bpe": "multimodal_s2s.tokenizers.bpe",
    "char": "multimodal_s2s.tokenizers.vocabulary",
    "sentencepiece": "multimodal_s2s.tokenizers.sentencepiece",
    "whisper": "multimodal_s2s.tokenizers.whisper",
    "word": "multimodal_s2s.tokenizers.vocabulary",
}


class TokenizerFormatError(ValueError):
    """A tokenizer file or dict that cannot be read."""


class Tokenizer(ABC):
    """Text <-> token ids. Subclasses declare ``type_name`` and register themselves by defining it."""

    type_name: ClassVar[str]
    #: The special tokens every tokenizer holds, at ids PAD_ID, BOS_ID, EOS_ID, UNK_ID (0..3).
    special_tokens: ClassVar[tuple[str, ...]] = SPECIAL_TOKENS
    _types: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" in cls.__dict__:
            Tokenizer._types[cls.type_name] = cls

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""

    @abstractmethod
    def _encode(self, text: str) -> list[int]:
        """Ids of ``text`` without BOS/EOS."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens skipped."""

    @abstractmethod
    def _content(self) -> dict[str, Any]:
        """What ``from_dict`` needs besides the type and version fields."""

    @classmethod
    @abstractmethod
    def _from_content(cls, content: dict[str, Any]) -> Tokenizer:
        """Inverse of ``_content``; raises TokenizerFormatError on a malformed dict."""

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        """Ids of ``text``; with ``add_special``, wrapped in BOS ... EOS (decoder targets)."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        ids = self._encode(text)
        return [BOS_ID, *ids, EOS_ID] if add_special else ids

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict with a "type" field, read back by ``tokenizer_from_dict``."""
        return {"type": self.type_name, "version": FORMAT_VERSION, **self._content()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer of this class (or, called on ``Tokenizer``, of the dict's type)."""
        tokenizer = tokenizer_from_dict(data)
        if not isinstance(tokenizer, cls):
            raise TokenizerFormatError(f"expected a {cls.__name__}, the dict holds a {type(tokenizer).__name__}")
        return tokenizer

    def save(self, path: str | Path) -> None:
        """Write ``to_dict()`` as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild any tokenizer from ``Tokenizer.to_dict()`` output."""
    if not isinstance(data, dict):
        raise TokenizerFormatError(f"a tokenizer dict must be a JSON object, got {type(data).__name__}")
    type_name = data.get("type")
    if type_name in TYPE_MODULES:
        importlib.import_module(TYPE_MODULES[type_name])  # defining the class registers the type
    if type_name not in Tokenizer._types:
        known = ", ".join(sorted(TYPE_MODULES))
        raise TokenizerFormatError(f"unknown tokenizer type {type_name!r} (known: {known})")
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise TokenizerFormatError(
            f"unsupported tokenizer format version {version!r} (this code reads {FORMAT_VERSION})"
        )
    content = {key: value for key, value in data.items() if key not in ("type", "version")}
    return Tokenizer._types[type_name]._from_content(content)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer written by ``Tokenizer.save``; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TokenizerFormatError(f"tokenizer file {path} is not valid JSON: {error}") from error
    try:
        return tokenizer_from_dict(data)
    except TokenizerFormatError as error:
        raise TokenizerFormatError(f"tokenizer file {path}: {error}") from error


def check_specials(tokens: Sequence[str]) -> None:
    """Raise TokenizerFormatError unless ``tokens`` start with SPECIAL_TOKENS at their fixed ids."""
    if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise TokenizerFormatError(f"vocabulary must start with the special tokens {list(SPECIAL_TOKENS)}")
