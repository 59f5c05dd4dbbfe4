"""Where to cut a long recording before decoding: windows of speech, cut at silences (energy-based).

Frames quieter than the recording's loud frames by ``SILENCE_BELOW_PEAK_DB`` (or than
``SILENCE_FLOOR_DB`` dBFS) are silence; speech regions split by pauses of at least
``MIN_PAUSE_SECONDS`` are joined into windows up to a merge length, never longer than a maximum
(the checkpoint's longest training utterance, at most 30 s); a region longer than that is cut at
its quietest frame near the window's end. Silence between windows is not decoded.
"""

from __future__ import annotations

import math

import numpy as np

from multimodal_s2s.preprocessing.audio import HOP_LENGTH, SAMPLE_RATE

SILENCE_BELOW_PEAK_DB = 40.0
SILENCE_FLOOR_DB = -60.0
LOUD_PERCENTILE = 99
POWER_EPSILON = 1e-10  # added to the mean power of a frame before the log (digital silence = -100 dB)
MIN_PAUSE_SECONDS = 0.3
SPEECH_PAD_SECONDS = 0.1
SPLIT_SEARCH_FRACTION = 1 / 3  # an over-long region is cut at the quietest frame in its window's last third
SampleRange = tuple[int, int]


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


def _split_long(region: SampleRange, energies_db: np.ndarray, max_frames: int) -> list[SampleRange]:
    """Cut a frame range into pieces of at most ``max_frames``, each at the quietest frame of its last third."""
    pieces, (start, end) = [], region
    while end - start > max_frames:
        search_from = start + int(max_frames * (1 - SPLIT_SEARCH_FRACTION))
        cut = search_from + int(np.argmin(energies_db[search_from : start + max_frames]))
        pieces.append((start, cut))
        start = cut
    return [*pieces, (start, end)]


def speech_windows(waveform: np.ndarray, max_seconds: float, merge_seconds: float | None = None) -> list[SampleRange]:
    """(S,) waveform -> (start, end) sample ranges to decode, in order, disjoint, each at most ``max_seconds``.

    Speech regions (see the module docstring) are joined while the joined window spans at most
    ``merge_seconds`` (default ``max_seconds``); silence before, between and after windows is dropped.
    """
    energies = frame_energies_db(waveform)
    frames_per_second = SAMPLE_RATE / HOP_LENGTH
    max_frames = max(int(max_seconds * frames_per_second), 1)
    merge_frames = min(int((merge_seconds or max_seconds) * frames_per_second), max_frames)
    windows: list[SampleRange] = []
    for region in speech_regions(energies):
        for start, end in _split_long(region, energies, max_frames):
            if windows and end - windows[-1][0] <= merge_frames:
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
    return [(start * HOP_LENGTH, min(end * HOP_LENGTH, len(waveform))) for start, end in windows]
