"""How ``Transcriber`` transcribes: windows, decoding, whisper's checks and fallback, word timestamps; and
how ``Transcriber.live`` follows a stream (``LiveOptions``).

Every option has a keyword of the same name on ``Transcriber.__call__`` and ``Transcriber.stream``:

    >>> transcriber(["talk.flac"], word_timestamps=True, no_speech_threshold=None)

The checks and the fallback use whisper's names and defaults (``whisper.transcribe``); a threshold of
None turns its check off, and ``temperature=0.0`` turns the fallback off. ``PLAIN_DECODING`` keeps every
window's first decoding (no checks, no fallback).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from multimodal_s2s.checkpoint.header import is_seconds
from multimodal_s2s.speech.fallback import (
    BEST_OF,
    COMPRESSION_RATIO_THRESHOLD,
    LOGPROB_THRESHOLD,
    MAX_NGRAM_REPEATS,
    NO_SPEECH_THRESHOLD,
    WHISPER_TEMPERATURES,
    FallbackPolicy,
    QualityThresholds,
)
from multimodal_s2s.speech.vad import VADOptions
from multimodal_s2s.speech.windows import SampleRange

WINDOW_SPLITTERS = ("vad", "energy")
ALIGNMENTS = ("auto", "ctc", "attention")
DEFAULT_BATCH_SIZE = 8
READ_AHEAD_SECONDS = 600.0  # 10 minutes of 16 kHz float32 audio: 38 MB
#: A function that cuts a 16 kHz waveform (S,) into the (start, end) sample ranges to decode.
WindowSplitter = Callable[[np.ndarray], list[SampleRange]]


@dataclass(frozen=True)
class TranscriptionOptions:
    """Attributes:
    beam_size: beam width (None: the checkpoint's validation setting).
    batch_size: windows decoded together (across recordings).
    window_seconds: the longest window (default and cap: the checkpoint's longest training utterance, <= 30 s).
    ctc_weight: weight of the CTC score when a beam's hypotheses are rescored (default 0.3 with a CTC head;
        0 turns it off).
    windows: "vad" (Silero VAD speech regions, the default), "energy" (frames below the recording's loud
        frames are silence), or a function waveform (S,) -> sample ranges.
    vad: how the VAD finds speech (threshold, minimum speech and silence, padding before and after; the pad
        after speech left None is the checkpoint's, ``Transcriber.default_pad_after_seconds``).
    word_timestamps: give each segment its words with start, end and probability.
    alignment: where word times come from: "auto" (CTC forced alignment with the checkpoint's CTC head,
        cross-attention DTW without one), "ctc" (CTC forced alignment, which the checkpoint must offer:
        AlignmentError without a CTC head, before any input is read) or "attention" (always DTW). With a CTC
        head, "auto" and "ctc" time words alike: CTC, and DTW for a window whose tokens outnumber its rows.
    temperature: the temperatures tried in turn while a window fails a check (0: greedy or the beam).
    best_of: samples per temperature > 0 (the most probable one is kept).
    compression_ratio_threshold, logprob_threshold, no_speech_threshold: whisper's checks.
    max_ngram_repeats: most times an n-gram of words (n <= 4) may repeat back to back.
    drop_failed: drop a window that fails every temperature (whisper keeps its last decoding).
    read_ahead_seconds: audio read and cut into windows ahead, in a background thread, while windows are
        decoded (0: in turn, without a thread; None: READ_AHEAD_SECONDS where a CPU core is left over by
        the decoding, else 0; see ``Transcriber.read_ahead_seconds``).
    """

    beam_size: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    window_seconds: float | None = None
    ctc_weight: float | None = None
    windows: str | WindowSplitter = "vad"
    vad: VADOptions = field(default_factory=VADOptions)
    word_timestamps: bool = False
    alignment: str = "auto"
    temperature: float | tuple[float, ...] = WHISPER_TEMPERATURES
    best_of: int = BEST_OF
    compression_ratio_threshold: float | None = COMPRESSION_RATIO_THRESHOLD
    logprob_threshold: float | None = LOGPROB_THRESHOLD
    no_speech_threshold: float | None = NO_SPEECH_THRESHOLD
    max_ngram_repeats: int | None = MAX_NGRAM_REPEATS
    drop_failed: bool = True
    read_ahead_seconds: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.temperature, int | float):
            object.__setattr__(self, "temperature", (float(self.temperature),))
        self._check_numbers()
        if not callable(self.windows) and self.windows not in WINDOW_SPLITTERS:
            choices = ", ".join(WINDOW_SPLITTERS)
            raise ValueError(f"windows must be one of {choices} or a function, got {self.windows!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {self.alignment!r}")
        if not isinstance(self.vad, VADOptions):
            raise ValueError(f"vad must be VADOptions, got {type(self.vad).__name__}")
        self.fallback_policy()  # ValueError for bad temperatures or best_of

    def _check_numbers(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch size must be an integer >= 1, got {self.batch_size!r}")
        if self.window_seconds is not None and not (math.isfinite(self.window_seconds) and self.window_seconds > 0):
            raise ValueError(f"window seconds must be a finite number > 0, got {self.window_seconds}")
        if self.ctc_weight is not None and not 0 <= self.ctc_weight <= 1:
            raise ValueError(f"ctc weight must be in [0, 1], got {self.ctc_weight}")
        ahead = self.read_ahead_seconds
        if ahead is not None and not (math.isfinite(ahead) and ahead >= 0):
            raise ValueError(f"read_ahead_seconds must be a finite number >= 0, got {self.read_ahead_seconds}")
        if self.max_ngram_repeats is not None and self.max_ngram_repeats < 1:
            raise ValueError(f"max_ngram_repeats must be >= 1 or None, got {self.max_ngram_repeats}")

    def fallback_policy(self) -> FallbackPolicy:
        """The checks and the fallback as ``fallback.decode_with_fallback`` reads them."""
        thresholds = QualityThresholds(
            compression_ratio=self.compression_ratio_threshold,
            logprob=self.logprob_threshold,
            no_speech=self.no_speech_threshold,
            max_ngram_repeats=self.max_ngram_repeats,
        )
        return FallbackPolicy(thresholds, tuple(self.temperature), self.best_of, self.drop_failed)

    def updated(self, overrides: dict[str, Any]) -> TranscriptionOptions:
        """These options with ``overrides`` (option name -> value); TypeError names an unknown option."""
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown transcription option(s) {', '.join(unknown)}")
        return replace(self, **overrides) if overrides else self


#: Every window's first decoding kept: no checks, no fallback (``Transcriber.recognize``).
PLAIN_DECODING = TranscriptionOptions(
    windows="energy",
    temperature=0.0,
    compression_ratio_threshold=None,
    logprob_threshold=None,
    no_speech_threshold=None,
    max_ngram_repeats=None,
    drop_failed=False,
)


@dataclass(frozen=True)
class LiveOptions:
    """Attributes:
    chunk_seconds: audio between passes (latency is about 1-2 chunks; each pass costs a decoding).
    buffer_seconds: the most audio held (also at most the longest audio the checkpoint was trained on).
    close_silence_seconds: silence after an utterance's padded end that closes it.
    max_lag: compute time over audio time above which the transcriber falls back to a cheaper setting.
    """

    chunk_seconds: float = 1.0
    buffer_seconds: float = 30.0
    close_silence_seconds: float = 0.2
    max_lag: float = 1.0

    def __post_init__(self) -> None:
        for name in ("chunk_seconds", "buffer_seconds", "max_lag"):
            value = getattr(self, name)
            if not (is_seconds(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not is_seconds(self.close_silence_seconds):
            raise ValueError(f"close_silence_seconds must be a finite number >= 0, got {self.close_silence_seconds!r}")
