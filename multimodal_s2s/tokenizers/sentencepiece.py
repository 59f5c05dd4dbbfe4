"""SentencePiece pieces with an explicit vocabulary (Marian / OPUS-MT's tokenizer), carried whole in the
checkpoint: the ``.spm`` model's bytes and the piece of every id.

As ``MarianTokenizer`` does: a leading language code (``>>deu<<``) is one unit of its own, the rest of
the text is split into pieces by the SentencePiece model, and each piece takes its id from the vocabulary
(``<unk>`` when absent). Unlike it, no Moses punctuation normalization is applied (HF applies it only when
``sacremoses`` is installed). Source ids end in EOS and have no BOS (``encode(add_special=True)``), as
Marian's encoders were trained.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import sentencepiece

from multimodal_s2s.tokenizers.base import TokenizerFormatError
from multimodal_s2s.tokenizers.special import EOS_ID
from multimodal_s2s.tokenizers.vocabulary import VocabularyTokenizer, _field

#: SentencePiece's word-boundary mark.
WORD_BOUNDARY = "\u2581"


class SentencePieceTokenizer(VocabularyTokenizer):
    """``tokens[i]`` is the piece of id i (the first four are SPECIAL_TOKENS); ``model`` the bytes of a
    SentencePiece model that splits text into pieces and joins pieces into text."""

    type_name = "sentencepiece"

    def __init__(self, tokens: Sequence[str], model: bytes):
        super().__init__(tokens)
        self.model = bytes(model)
        self.processor = sentencepiece.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(self.model)
        except (RuntimeError, OSError) as error:
            raise TokenizerFormatError(f"not a SentencePiece model ({error})") from None

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        """Ids of ``text``; with ``add_special``, followed by EOS (Marian's source layout: no BOS)."""
        ids = super().encode(text)
        return [*ids, EOS_ID] if add_special else ids

    def split(self, text: str) -> list[str]:
        code = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[: end + 2]], text[end + 2 :]
        return code + self.processor.encode(text, out_type=str)

    def join(self, units: list[str]) -> str:
        return self.processor.decode_pieces(units).replace(WORD_BOUNDARY, " ").strip()

    def _content(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "model": base64.b64encode(self.model).decode("ascii")}

    @classmethod
    def _from_content(cls, content: dict[str, Any]) -> SentencePieceTokenizer:
        tokens = _field(content, "tokens", list)
        if not all(isinstance(t, str) for t in tokens):
            raise TokenizerFormatError("a sentencepiece tokenizer's tokens must be strings")
        try:
            model = base64.b64decode(_field(content, "model", str), validate=True)
        except binascii.Error as error:
            raise TokenizerFormatError(f"field 'model' is not base64 ({error})") from None
        return cls(tokens, model)
