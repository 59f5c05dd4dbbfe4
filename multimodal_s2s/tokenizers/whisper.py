"""whisper's tokenizer (tiktoken byte-level BPE with whisper's special tokens), carried whole in the checkpoint:
the ``.tiktoken`` ranks file that ships in the openai-whisper wheel (gpt2 for the English-only models,
multilingual for the others) and the language codes, so that no whisper install is needed to use it.

Ids: whisper's vocabulary in the suite's order. The suite keeps PAD, BOS, EOS, UNK at 0..3; whisper has
no padding or unknown token, so they take two of its special tokens that whisper's decoding always
suppresses and its tokenizer never produces: ``<|startofprev|>`` is the suite's PAD, ``<|startoflm|>`` its
UNK. ``<|startoftranscript|>`` is BOS (decoding starts from it), ``<|endoftext|>`` EOS; every other whisper
id follows in whisper's order. The vocabulary keeps whisper's size: suite id i is whisper id ``order[i]``.

Text: as in whisper's training transcripts, the text after the prompt starts with a space, so ``encode``
adds one where the text has none and ``decode`` strips the white space around the text. ``decode`` drops
every whisper special token (languages, task, timestamps).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from typing import Any

from multimodal_s2s.tokenizers.base import Tokenizer, TokenizerFormatError
from multimodal_s2s.tokenizers.vocabulary import _field

#: whisper's pre-tokenizer pattern (``whisper.tokenizer.get_encoding``).
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
#: whisper's timestamp tokens: 0.00 .. 30.00 s in steps of 0.02 s.
TIMESTAMPS = 1501
#: The whisper special token that becomes each suite special token, in the order of SPECIAL_TOKENS.
SUITE_SPECIALS = ("<|startofprev|>", "<|startoftranscript|>", "<|endoftext|>", "<|startoflm|>")
ENCODINGS = ("gpt2", "multilingual")


def whisper_specials(languages: Sequence[str]) -> list[str]:
    """whisper's special tokens in id order after the BPE ranks."""
    return [
        "<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in languages), "<|translate|>",
        "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
        *(f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMPS)),
    ]


class WhisperTokenizer(Tokenizer):
    """whisper's tiktoken encoding (``encoding``: "gpt2" or "multilingual", ``ranks``: the bytes of its
    ``.tiktoken`` file, ``languages``: the codes of its language tokens) with suite ids (module docstring)."""

    type_name = "whisper"

    def __init__(self, encoding: str, ranks: bytes, languages: Sequence[str]):
        import tiktoken  # only a whisper checkpoint needs it

        if encoding not in ENCODINGS:
            raise TokenizerFormatError(f"a whisper encoding is one of {', '.join(ENCODINGS)}, not {encoding!r}")
        self.encoding_name, self.ranks, self.languages = encoding, bytes(ranks), list(languages)
        try:
            lines = (line.split() for line in self.ranks.splitlines() if line)
            mergeable = {base64.b64decode(token): int(rank) for token, rank in lines}
        except (ValueError, binascii.Error) as error:
            raise TokenizerFormatError(f"not a tiktoken ranks file ({error})") from None
        specials = whisper_specials(self.languages)
        self.special_ids = {token: len(mergeable) + i for i, token in enumerate(specials)}
        self.encoding = tiktoken.Encoding(
            name=encoding, explicit_n_vocab=len(mergeable) + len(specials), pat_str=PATTERN,
            mergeable_ranks=mergeable, special_tokens=self.special_ids,
        )
        first = [self.special_ids[token] for token in SUITE_SPECIALS]
        taken = set(first)
        #: the whisper id of each suite id, and the inverse
        self.order = [*first, *(i for i in range(self.encoding.n_vocab) if i not in taken)]
        self.suite_ids = {whisper_id: suite_id for suite_id, whisper_id in enumerate(self.order)}
        self.eot = self.special_ids["<|endoftext|>"]

    @property
    def vocab_size(self) -> int:
        return len(self.order)

    @property
    def multilingual(self) -> bool:
        return self.encoding_name == "multilingual"

    def token_id(self, token: str) -> int:
        """The suite id of a whisper special token (``"<|en|>"``, ``"<|notimestamps|>"``)."""
        if token not in self.special_ids:
            raise KeyError(f"{token!r} is not a special token of this whisper tokenizer")
        return self.suite_ids[self.special_ids[token]]

    def to_suite(self, whisper_ids: Sequence[int]) -> list[int]:
        return [self.suite_ids[i] for i in whisper_ids]

    def to_whisper(self, suite_ids: Sequence[int]) -> list[int]:
        return [self.order[i] for i in suite_ids]

    def _encode(self, text: str) -> list[int]:
        text = text if text[:1].isspace() or not text else " " + text
        return self.to_suite(self.encoding.encode_ordinary(text))

    def decode(self, ids: Sequence[int]) -> str:
        out_of_range = [i for i in ids if not 0 <= i < len(self.order)]
        if out_of_range:
            raise ValueError(f"ids {out_of_range[:5]} are outside the vocabulary (size {len(self.order)})")
        text_ids = [w for w in self.to_whisper(ids) if w < self.eot]
        return self.encoding.decode(text_ids).strip()

    def _content(self) -> dict[str, Any]:
        ranks = base64.b64encode(zlib.compress(self.ranks, 9)).decode("ascii")
        return {"encoding": self.encoding_name, "ranks": ranks, "languages": self.languages}

    @classmethod
    def _from_content(cls, content: dict[str, Any]) -> WhisperTokenizer:
        languages = _field(content, "languages", list)
        if not all(isinstance(code, str) for code in languages):
            raise TokenizerFormatError("a whisper tokenizer's languages must be strings")
        try:
            ranks = zlib.decompress(base64.b64decode(_field(content, "ranks", str), validate=True))
        except (binascii.Error, zlib.error) as error:
            raise TokenizerFormatError(f"field 'ranks' is not compressed base64 ({error})") from None
        return cls(_field(content, "encoding", str), ranks, languages)

