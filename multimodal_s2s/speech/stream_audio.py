"""Audio as it arrives, made 16 kHz mono float32 piece by piece (``StreamingTranscriber``'s input).

A stream has one rate, given when it opens (1 kHz to 384 kHz); pieces at another rate than 16 kHz go through
one soxr resampler that keeps its state across pieces (``flush`` returns what it holds at the end). A piece is
samples (S,) or frames of channels (S, C), as a microphone library gives them: integer PCM (scaled to -1..1)
or floats. Anything else (bytes, text, NaN, three axes) is refused with one ``AudioStreamError`` line.
"""

from __future__ import annotations

import numpy as np
import soxr

from multimodal_s2s.preprocessing.audio import SAMPLE_RATE

MIN_RATE, MAX_RATE = 1_000, 384_000
MAX_CHANNELS = 64


class AudioStreamError(ValueError):
    """A piece of a stream, or its rate, that is not audio."""


def check_rate(sample_rate: object) -> int:
    """``sample_rate`` as an int in [MIN_RATE, MAX_RATE]; AudioStreamError otherwise."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise AudioStreamError(f"sample rate must be an integer number of Hz, got {sample_rate!r}")
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioStreamError(f"sample rate must be from {MIN_RATE} to {MAX_RATE} Hz, got {sample_rate}")
    return int(sample_rate)


def as_mono(piece: object) -> np.ndarray:
    """A piece (S,) or (S, C) of integer PCM or floats -> float32 mono (S,); AudioStreamError otherwise."""
    if not isinstance(piece, np.ndarray):
        raise AudioStreamError(f"audio pieces must be numpy arrays of samples, got {type(piece).__name__}")
    numeric = np.issubdtype(piece.dtype, np.integer) or np.issubdtype(piece.dtype, np.floating)
    if not numeric or piece.ndim not in (1, 2) or (piece.ndim == 2 and not 0 < piece.shape[1] <= MAX_CHANNELS):
        kind = "(samples,) or (samples, channels) integers or floats"
        raise AudioStreamError(f"audio pieces must be {kind}, got {piece.dtype} {piece.shape}")
    scale = np.iinfo(piece.dtype).max + 1 if np.issubdtype(piece.dtype, np.integer) else 1
    mono = np.asarray(piece, dtype=np.float32) / scale
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioStreamError("audio piece holds NaN or infinite samples")
    return mono


class StreamResampler:
    """Pieces at ``sample_rate`` -> 16 kHz mono float32, the resampler's state kept between pieces."""

    def __init__(self, sample_rate: int):
        self.sample_rate = check_rate(sample_rate)
        same = self.sample_rate == SAMPLE_RATE
        self._soxr = None if same else soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32")

    def __call__(self, piece: object) -> np.ndarray:
        mono = as_mono(piece)
        if self._soxr is None or len(mono) == 0:
            return mono
        return self._soxr.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds (none at 16 kHz)."""
        if self._soxr is None:
            return np.zeros(0, dtype=np.float32)
        return self._soxr.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
