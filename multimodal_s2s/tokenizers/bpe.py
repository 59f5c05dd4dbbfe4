"""Byte-level BPE, trained and run by HF ``tokenizers``; or another model's byte-level BPE (BART's vocab.json and
merges.txt) in its own ids, mapped to the suite's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from multimodal_s2s.tokenizers.base import Tokenizer, TokenizerFormatError
from multimodal_s2s.tokenizers.special import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID

#: Byte-level BPE covers text through the 256 byte symbols.
BYTE_ALPHABET_SIZE = 256


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style pre-tokenizer and decoder, no prefix space): ``decode(encode(s)) == s``
    for any text (with ``full_alphabet``; else for text whose bytes were in the training corpus).

    Special-token names in the text ("<eos>") are encoded as ordinary text, never as special ids.

    With ``order`` (an imported model's tokenizer, e.g. BART's), ``hf_tokenizer`` keeps that model's own ids and
    ``order[i]`` is the id it gives suite id i (None for the suite's PAD and BOS, which the model's text has
    not); ``encode(add_special=True)`` then wraps the text as the model's post-processor does (BART's
    ``<s> ... </s>``) and ``decode`` skips the model's special tokens (``batch_decode(skip_special_tokens=True)``).
    """

    type_name = "bpe"

    def __init__(self, hf_tokenizer: HFTokenizer, order: Sequence[int | None] | None = None):
        self.order = None if order is None else list(order)
        if self.order is None:
            for expected_id, token in enumerate(SPECIAL_TOKENS):
                if hf_tokenizer.token_to_id(token) != expected_id:
                    raise TokenizerFormatError(f"BPE vocabulary must hold {token!r} at id {expected_id}")
        else:
            _check_order(self.order, hf_tokenizer.get_vocab_size(with_added_tokens=True))
        #: the suite id of each id of ``hf_tokenizer`` (with ``order``)
        self.suite_ids = {hf_id: i for i, hf_id in enumerate(self.order or []) if hf_id is not None}
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
        return self.hf_tokenizer.get_vocab_size(with_added_tokens=True) if self.order is None else len(self.order)

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        """Ids of ``text``; with ``add_special``, BOS ... EOS, or with ``order`` the model's own wrapping."""
        if self.order is None or not add_special:
            return super().encode(text, add_special)
        return self._suite(self.hf_tokenizer.encode(text, add_special_tokens=True).ids)

    def _encode(self, text: str) -> list[int]:
        ids = self.hf_tokenizer.encode(text, add_special_tokens=False).ids
        return ids if self.order is None else self._suite(ids)

    def _suite(self, hf_ids: list[int]) -> list[int]:
        return [self.suite_ids.get(i, UNK_ID) for i in hf_ids]

    def decode(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        out_of_range = [i for i in ids if not 0 <= i < self.vocab_size]
        if out_of_range:
            raise ValueError(f"ids {out_of_range[:5]} are outside the vocabulary (size {self.vocab_size})")
        if self.order is not None:
            ids = [self.order[i] for i in ids if self.order[i] is not None]
        return self.hf_tokenizer.decode(ids, skip_special_tokens=True)

    def _content(self) -> dict[str, Any]:
        order = {} if self.order is None else {"order": self.order}
        return {"hf_tokenizer": self.hf_tokenizer.to_str(), **order}

    @classmethod
    def _from_content(cls, content: dict[str, Any]) -> BPETokenizer:
        serialized = content.get("hf_tokenizer")
        if not isinstance(serialized, str):
            raise TokenizerFormatError("field 'hf_tokenizer' missing or not a string")
        try:
            hf_tokenizer = HFTokenizer.from_str(serialized)
        except Exception as error:  # the HF loader raises a bare Exception on malformed JSON
            raise TokenizerFormatError(f"field 'hf_tokenizer' is not a valid HF tokenizer: {error}") from error
        order = content.get("order")
        if order is not None and not isinstance(order, list):
            raise TokenizerFormatError("field 'order' is not a list")
        return cls(hf_tokenizer, order)


def _check_order(order: list[Any], size: int) -> None:
    """TokenizerFormatError unless ``order`` gives each suite id a distinct id below ``size`` (or None), with
    None for PAD and BOS and ids for EOS and UNK."""
    given = [i for i in order if i is not None]
    if len(order) < len(SPECIAL_TOKENS):
        raise TokenizerFormatError(f"a BPE order must hold at least the {len(SPECIAL_TOKENS)} special ids")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < size for i in given):
        raise TokenizerFormatError(f"a BPE order must hold ids in 0..{size - 1} or null")
    if len(set(given)) != len(given) or order[PAD_ID] is not None or order[BOS_ID] is not None or None in (
        order[EOS_ID], order[UNK_ID]
    ):
        raise TokenizerFormatError("a BPE order must hold distinct ids, null for PAD and BOS, ids for EOS and UNK")
