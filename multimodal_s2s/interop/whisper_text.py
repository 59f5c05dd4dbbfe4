"""whisper's vocabulary and decoding rules for an imported model, from the openai-whisper package: the
``.tiktoken`` files in its wheel, its language codes, its non-speech tokens (``suppress_tokens="-1"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multimodal_s2s.interop.writing import ImportFailed
from multimodal_s2s.tokenizers import TokenizerFormatError, WhisperTokenizer

#: The English-only vocabulary's size; a multilingual one has 1 more token plus one per language beyond 99.
ENGLISH_VOCAB = 51864
#: Tokens of a vocabulary besides its language tokens (whisper's ``num_languages = n_vocab - 51765 - multilingual``).
NON_LANGUAGE_TOKENS = 51765


def _whisper() -> Any:
    try:
        import whisper.tokenizer
    except ImportError:
        raise ImportFailed("importing a whisper model needs the openai-whisper package (pip install openai-whisper): "
                           "its wheel holds whisper's vocabulary files") from None
    return whisper.tokenizer


def whisper_languages() -> list[str]:
    """whisper's language codes in token order."""
    return list(_whisper().LANGUAGES)


def tokenizer_for(n_vocab: int, path: Path) -> WhisperTokenizer:
    """The suite tokenizer of a whisper model with ``n_vocab`` tokens; ImportFailed when no whisper vocabulary
    has that size."""
    multilingual = n_vocab > ENGLISH_VOCAB
    languages = whisper_languages()[: n_vocab - NON_LANGUAGE_TOKENS - int(multilingual)]
    name = "multilingual" if multilingual else "gpt2"
    ranks = Path(_whisper().__file__).parent / "assets" / f"{name}.tiktoken"
    try:
        tokenizer = WhisperTokenizer(name, ranks.read_bytes(), languages)
    except (OSError, TokenizerFormatError) as error:
        raise ImportFailed(f"{ranks}: whisper's vocabulary file cannot be read ({error})") from None
    if n_vocab < ENGLISH_VOCAB or tokenizer.vocab_size != n_vocab:
        raise ImportFailed(f"{path}: n_vocab {n_vocab} is no whisper vocabulary (51864 English-only, 51865 and up)")
    return tokenizer


def suppression(tokenizer: WhisperTokenizer) -> dict[str, tuple[int, ...]]:
    """whisper's decoding rules in suite ids: ``suppress_tokens`` (its default "-1": the non-speech tokens, the
    task and start tokens and no-speech) and ``suppress_at_start`` (``SuppressBlank``: a space, EOS)."""
    original = _whisper().get_tokenizer(tokenizer.multilingual, num_languages=len(tokenizer.languages))
    banned = {*original.non_speech_tokens, original.transcribe, original.translate, original.sot, original.sot_prev,
              original.sot_lm, original.no_speech}
    at_start = [*original.encode(" "), original.eot]
    return {"suppress_tokens": tuple(sorted(tokenizer.to_suite(sorted(banned)))),
            "suppress_at_start": tuple(tokenizer.to_suite(at_start))}
