"""Byte-level BPE, trained and run by HF ``tokenizers``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from multimodal_s2s.tokenizers.base import Tokenizer, TokenizerFormatError
from multimodal_s2s.tokenizers.special import SPECIAL_TOKENS

#: Byte-level BPE covers text through the 256 byte symbols.
BYTE_ALPHABET_SIZE = 256


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style pre-tokenizer and decoder, no prefix space): ``decode(encode(s)) == s``
    for any text (with ``full_alphabet``; else for text whose bytes were in the training corpus).

    Special-token names in the text ("<eos>") are encoded as ordinary text, never as special ids.
    """

    type_name = "bpe"

    def __init__(self, hf_tokenizer: HFTokenizer):
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            if hf_tokenizer.token_to_id(token) != expected_id:
                raise TokenizerFormatError(f"BPE vocabulary must hold {token!r} at id {expected_id}")
        hf_tokenizer.encode_special_tokens = True  # not stored in the HF JSON: set on every construction
        self.hf_tokenizer = hf_tokenizer

    @classmethod
    def train(
        cls, corpus: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2, full_alphabet: bool = True
    ) -> BPETokenizer:
        """Learn merges on ``corpus`` until ``vocab_size`` ids (special tokens and byte symbols included).

        ``full_alphabet`` puts all 256 byte symbols in the vocabulary (no unknowns ever; needs
        vocab_size >= 260); without it only the corpus's bytes are (smaller vocabularies for tiny data,
        other bytes become <unk>). ``min_frequency``: a pair must occur this often to be merged.
        """
        smallest = len(SPECIAL_TOKENS) + (BYTE_ALPHABET_SIZE if full_alphabet else 0)
        if vocab_size < smallest:
            raise ValueError(f"vocab_size must be >= {smallest} (special tokens + byte alphabet), got {vocab_size}")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        hf_tokenizer = HFTokenizer(models.BPE(unk_token=SPECIAL_TOKENS[-1]))
        hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf_tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if full_alphabet else [],
            show_progress=False,
        )
        hf_tokenizer.train_from_iterator(corpus, trainer=trainer)
        return cls(hf_tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.hf_tokenizer.get_vocab_size(with_added_tokens=True)

    def _encode(self, text: str) -> list[int]:
        return self.hf_tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        out_of_range = [i for i in ids if not 0 <= i < self.vocab_size]
        if out_of_range:
            raise ValueError(f"ids {out_of_range[:5]} are outside the vocabulary (size {self.vocab_size})")
        return self.hf_tokenizer.decode(ids, skip_special_tokens=True)

    def _content(self) -> dict[str, Any]:
        return {"hf_tokenizer": self.hf_tokenizer.to_str()}

    @classmethod
    def _from_content(cls, content: dict[str, Any]) -> BPETokenizer:
        serialized = content.get("hf_tokenizer")
        if not isinstance(serialized, str):
            raise TokenizerFormatError("field 'hf_tokenizer' missing or not a string")
        try:
            hf_tokenizer = HFTokenizer.from_str(serialized)
        except Exception as error:  # the HF loader raises a bare Exception on malformed JSON
            raise TokenizerFormatError(f"field 'hf_tokenizer' is not a valid HF tokenizer: {error}") from error
        return cls(hf_tokenizer)
