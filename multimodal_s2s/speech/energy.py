"""The energy splitter: windows of speech cut at silences, by frame energy (``windows`` joins and cuts them).

Frames quieter than the recording's loud frames by ``SILENCE_BELOW_PEAK_DB`` (or than
``SILENCE_FLOOR_DB`` dBFS) are silence; speech regions split by pauses of at least
``MIN_PAUSE_SECONDS`` are joined into windows up to a merge length, never longer than a maximum
(the checkpoint's longest training utterance, at most 30 s); a region longer than that is cut at
its quietest frame in the window's last third. Silence between windows is not decoded.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from multimodal_s2s.preprocessing.audio import HOP_LENGTH, SAMPLE_RATE
from multimodal_s2s.speech.windows import SampleRange, join_regions, window_lengths

SILENCE_BELOW_PEAK_DB = 40.0
SILENCE_FLOOR_DB = -60.0
LOUD_PERCENTILE = 99
POWER_EPSILON = 1e-10  # added to the mean power of a frame before the log (digital silence = -100 dB)
MIN_PAUSE_SECONDS = 0.3
SPEECH_PAD_SECONDS = 0.1


def frame_energies_db(waveform: np.ndarray) -> np.ndarray:
    """(S,) -> (ceil(S / 160),) mean power of each 10 ms frame in dB relative to full scale."""
    frames = math.ceil(len(waveform) / HOP_LENGTH)
    padded = np.zeros(frames * HOP_LENGTH, dtype=np.float32)
    padded[: len(waveform)] = waveform
    power = (padded.reshape(frames, HOP_LENGTH) ** 2).mean(axis=1)
    return 10 * np.log10(power + POWER_EPSILON)


def speech_regions(energies_db: np.ndarray) -> list[SampleRange]:
    """Frame energies (F,) -> (start, end) frame ranges of speech, pauses shorter than MIN_PAUSE_SECONDS
    bridged, each padded by SPEECH_PAD_SECONDS (clipped to the recording)."""
    threshold = max(np.percentile(energies_db, LOUD_PERCENTILE) - SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DB)
    loud = np.flatnonzero(energies_db > threshold)
    if len(loud) == 0:
        return []
    frames_per_second = SAMPLE_RATE / HOP_LENGTH
    breaks = np.flatnonzero(np.diff(loud) > MIN_PAUSE_SECONDS * frames_per_second)  # last loud frame before a pause
    starts, ends = np.r_[loud[0], loud[breaks + 1]], np.r_[loud[breaks], loud[-1]] + 1
    pad = round(SPEECH_PAD_SECONDS * frames_per_second)
    return [(max(int(s) - pad, 0), min(int(e) + pad, len(energies_db))) for s, e in zip(starts, ends, strict=True)]


def speech_windows(waveform: np.ndarray, max_seconds: float, merge_seconds: float | None = None) -> list[SampleRange]:
    """(S,) waveform -> (start, end) sample ranges to decode, in order, disjoint, each at most ``max_seconds``.

    Speech regions (see the module docstring) are joined while the joined window spans at most
    ``merge_seconds`` (default ``max_seconds``); silence before, between and after windows is dropped.
    """
    energies = frame_energies_db(waveform)
    max_frames, merge_frames = window_lengths(max_seconds, merge_seconds, SAMPLE_RATE / HOP_LENGTH, min_length=1)
    windows = join_regions(speech_regions(energies), max_frames, merge_frames, partial(quietest_frame, energies))
    return [(start * HOP_LENGTH, min(end * HOP_LENGTH, len(waveform))) for start, end in windows]


def speech_sample_regions(waveform: np.ndarray) -> list[SampleRange]:
    """(S,) waveform -> (start, end) sample ranges of speech (``speech_regions``), in order."""
    regions = speech_regions(frame_energies_db(waveform))
    return [(start * HOP_LENGTH, min(end * HOP_LENGTH, len(waveform))) for start, end in regions]


def quietest_frame(energies_db: np.ndarray, first: int, last: int) -> int:
    """The quietest frame in [first, last) (where a region too long for one window is cut)."""
    return first + int(np.argmin(energies_db[first:last]))
