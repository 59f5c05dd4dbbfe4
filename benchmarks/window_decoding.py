"""Decoding a batch of windows of one recording with ``transcription.Transcriber``'s model, whisper's
checks and fallback (``fallback``) and word timestamps (``alignment``): the stand-in that
``longform_asr.py`` uses until the ``Transcriber`` pipeline does this itself.

Plain decoding (no checks) is ``Transcriber.recognize`` for greedy decoding: the same features,
encoder and ``decode_encoded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from multimodal_s2s.alignment import (
    WindowTokens,
    Word,
    attention_word_timestamps,
    ctc_word_timestamps,
    seconds_per_row,
)
from multimodal_s2s.audio import SAMPLE_RATE
from multimodal_s2s.data.text_batches import pad_last_axis
from multimodal_s2s.decoding import DecodingOptions, decode_encoded
from multimodal_s2s.fallback import WindowDecoding, decode_with_fallback, no_speech_probabilities
from multimodal_s2s.pipelines.transcription import MIN_WINDOW_SECONDS, Transcriber
from multimodal_s2s.speech_windows import SampleRange
from multimodal_s2s.types import SequenceOutput

ALIGNMENTS = ("auto", "ctc", "attention")


@dataclass
class TimedSegment:
    start: float  # seconds
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


def encode_windows(recognizer: Transcriber, pieces: list[np.ndarray]) -> SequenceOutput:
    """Waveforms -> their encoder output (B, T, D), as ``Transcriber.recognize`` computes it."""
    min_samples = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
    tensors = [torch.from_numpy(np.pad(p, (0, max(min_samples - len(p), 0)))) for p in pieces]
    inputs, lengths = pad_last_axis(tensors, 0.0)  # (B, S), (B,)
    device = recognizer.device
    features, frame_lengths = recognizer.features(inputs.to(device), lengths.to(device))
    return recognizer.model.encode(features, frame_lengths)


def _rows(encoded: SequenceOutput, indices: list[int]) -> SequenceOutput:
    index = torch.tensor(indices, device=encoded.memory.device)
    return SequenceOutput(memory=encoded.memory[index], mask=encoded.mask[index])


@torch.no_grad()
def decode_windows(
    recognizer: Transcriber,
    waveform: np.ndarray,
    windows: list[SampleRange],
    checks: bool,
    word_timestamps: bool,
    alignment: str = "auto",
) -> list[TimedSegment]:
    """The windows of ``waveform`` decoded in one batch -> a segment per window kept (checks drop silence and
    windows that fail every fallback)."""
    if not windows:
        return []
    pieces = [waveform[start:end] for start, end in windows]
    encoded = encode_windows(recognizer, pieces)
    options = recognizer.window_options(None, max(len(p) for p in pieces) / SAMPLE_RATE)
    tokenizer = recognizer.header.tokenizer
    no_speech = no_speech_probabilities(recognizer.model, encoded).tolist() if checks else [None] * len(pieces)

    def decode_batch(indices: list[int], batch_options: DecodingOptions) -> list[WindowDecoding]:
        results = decode_encoded(recognizer.model, _rows(encoded, indices), batch_options)
        return [
            WindowDecoding.from_result(result, tokenizer, no_speech[i], batch_options.temperature)
            for i, result in zip(indices, results, strict=True)
        ]

    indices = list(range(len(windows)))
    decodings = decode_with_fallback(indices, decode_batch, options) if checks else decode_batch(indices, options)
    kept = [i for i, decoding in enumerate(decodings) if decoding is not None]
    spans = [WindowTokens(decodings[i].tokens, windows[i][0] / SAMPLE_RATE, windows[i][1] / SAMPLE_RATE) for i in kept]
    words = window_words(recognizer, _rows(encoded, kept), spans, alignment) if word_timestamps and kept else {}
    return [
        TimedSegment(span.start, span.end, decodings[i].text, words.get(position, []))
        for position, (i, span) in enumerate(zip(kept, spans, strict=True))
    ]


def window_words(
    recognizer: Transcriber, encoded: SequenceOutput, spans: list[WindowTokens], alignment: str
) -> dict[int, list[Word]]:
    """Words of each window (by position): CTC forced alignment where the checkpoint has a CTC head and the
    tokens fit ("auto", "ctc"), cross-attention DTW otherwise ("attention": always)."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
    tokenizer = recognizer.header.tokenizer
    row_seconds = seconds_per_row(recognizer.model.encoder.info)
    words: dict[int, list[Word]] = {}
    if recognizer.ctc_head is not None and alignment != "attention":
        log_probs = recognizer.ctc_head(encoded)  # (B, T, V)
        for row, span in enumerate(spans):
            found = ctc_word_timestamps(log_probs[row][encoded.mask[row]], span, tokenizer, row_seconds)
            if found is not None:
                words[row] = found
    missing = [row for row in range(len(spans)) if row not in words]
    if missing:
        by_attention = attention_word_timestamps(
            recognizer.model, _rows(encoded, missing), [spans[row] for row in missing], tokenizer, row_seconds
        )
        words.update(zip(missing, by_attention, strict=True))
    return words
