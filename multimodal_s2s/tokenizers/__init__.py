"""Tokenizers (character, word, byte-level BPE, SentencePiece, whisper's tiktoken) with one JSON format:
``save`` / ``load_tokenizer``.

All put the special tokens of ``tokenizers.special.SPECIAL_TOKENS`` at ids PAD_ID, BOS_ID, EOS_ID, UNK_ID (0..3).
Names are imported when first used, so that a character or word tokenizer needs neither HF ``tokenizers``
nor ``sentencepiece`` (the ONNX runtime reads one with numpy alone); ``tokenizer_from_dict`` imports the
module of the type it reads.
"""

from multimodal_s2s.lazy import lazy_exports

_EXPORTS = {
    "BPETokenizer": "multimodal_s2s.tokenizers.bpe",
    "CharTokenizer": "multimodal_s2s.tokenizers.vocabulary",
    "SentencePieceTokenizer": "multimodal_s2s.tokenizers.sentencepiece",
    "Tokenizer": "multimodal_s2s.tokenizers.base",
    "TokenizerFormatError": "multimodal_s2s.tokenizers.base",
    "VocabularyTokenizer": "multimodal_s2s.tokenizers.vocabulary",
    "WhisperTokenizer": "multimodal_s2s.tokenizers.whisper",
    "WordTokenizer": "multimodal_s2s.tokenizers.vocabulary",
    "load_tokenizer": "multimodal_s2s.tokenizers.base",
    "tokenizer_from_dict": "multimodal_s2s.tokenizers.base",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
