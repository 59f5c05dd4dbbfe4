"""Tokenizers (character, word, byte-level BPE, SentencePiece, whisper's tiktoken) with one JSON format:
``save`` / ``load_tokenizer``.

All put the special tokens of ``types.SPECIAL_TOKENS`` at ids PAD_ID, BOS_ID, EOS_ID, UNK_ID (0..3).
"""

from multimodal_s2s.tokenizers.base import Tokenizer, TokenizerFormatError, load_tokenizer, tokenizer_from_dict
from multimodal_s2s.tokenizers.bpe import BPETokenizer
from multimodal_s2s.tokenizers.sentencepiece import SentencePieceTokenizer
from multimodal_s2s.tokenizers.vocabulary import CharTokenizer, VocabularyTokenizer, WordTokenizer
from multimodal_s2s.tokenizers.whisper import WhisperTokenizer

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TokenizerFormatError",
    "VocabularyTokenizer",
    "WhisperTokenizer",
    "WordTokenizer",
    "load_tokenizer",
    "tokenizer_from_dict",
]
