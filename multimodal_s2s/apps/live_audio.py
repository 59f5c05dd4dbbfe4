"""Where ``mms2s transcribe --stream`` reads audio from, as pieces (numpy arrays) at a rate.

- the microphone (``--stream`` alone): the default input device through the sounddevice package, mono
  16-bit at ``--rate`` (default 16 kHz), 0.1 s per piece;
- standard input (``--stream -``): raw 16-bit little-endian mono PCM at ``--rate``, e.g.
  ``ffmpeg -i SOURCE -f s16le -ac 1 -ar 16000 - | mms2s transcribe --stream - ...``; a container file
  piped whole (WAV, FLAC, Ogg, MP3) or bytes that cannot be 16-bit audio (text, random bytes: a first second
  of full-scale noise or of a DC offset) are refused in one line;
- a file (``--stream FILE``): read whole at 16 kHz, given in 0.1 s pieces, at the pace of its playback with
  ``--realtime`` (so that a file stands in for a microphone), else as fast as they are taken.

Each source is ``(rate, pieces)``; ``SourceError`` (one line) where it cannot be opened or read.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from multimodal_s2s.preprocessing.audio import SAMPLE_RATE, AudioLoadError, load_audio

PIECE_SECONDS = 0.1
PCM_BYTES = 2
#: Container files' first bytes: piped whole, they are not raw PCM.
CONTAINER_MAGIC = {b"RIFF": "WAV", b"fLaC": "FLAC", b"OggS": "Ogg", b"ID3": "MP3", b"\xff\xfb": "MP3"}
#: A first second louder than this (RMS, or mean, of full scale) is not audio: text, random bytes.
MAX_PLAUSIBLE_RMS, MAX_PLAUSIBLE_MEAN = 0.5, 0.25
FFMPEG_HINT = "ffmpeg -i SOURCE -f s16le -ac 1 -ar 16000 - | mms2s transcribe --stream - ..."


class SourceError(RuntimeError):
    """A live source that cannot be opened or read."""


def microphone(rate: int) -> tuple[int, Iterator[np.ndarray]]:
    """The default input device's pieces (int16 (S, 1)); SourceError without sounddevice or a device."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:  # OSError: the package without its PortAudio library
        raise SourceError(
            f"the microphone needs the sounddevice package (pip install sounddevice): {error}; "
            f"or pipe audio in: {FFMPEG_HINT}"
        ) from None
    try:
        stream = sounddevice.InputStream(samplerate=rate, channels=1, dtype="int16")
    except Exception as error:  # PortAudioError, ValueError: no input device, a rate it does not take
        raise SourceError(f"cannot open the microphone at {rate} Hz: {error}") from None

    def pieces() -> Iterator[np.ndarray]:
        with stream:
            while True:
                samples, _overflowed = stream.read(round(rate * PIECE_SECONDS))
                yield samples

    return rate, pieces()


def standard_input(rate: int, stream: BinaryIO | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """Raw 16-bit PCM pieces (int16 (S,)) from ``stream`` (standard input), as they come; see the module
    docstring for what is refused."""
    stream = stream or sys.stdin.buffer
    size = round(rate * PIECE_SECONDS) * PCM_BYTES

    def pieces() -> Iterator[np.ndarray]:
        pending, checked = b"", False
        while data := stream.read1(size) if hasattr(stream, "read1") else stream.read(size):
            pending += data
            if not checked and len(pending) < rate * PCM_BYTES:
                continue  # the first second is checked whole
            if not checked:
                check_pcm(pending)
                checked = True
            whole = len(pending) // PCM_BYTES * PCM_BYTES
            yield np.frombuffer(pending[:whole], dtype="<i2")
            pending = pending[whole:]
        if not checked and pending:
            check_pcm(pending)
        if len(pending) >= PCM_BYTES:
            yield np.frombuffer(pending[: len(pending) // PCM_BYTES * PCM_BYTES], dtype="<i2")

    return rate, pieces()


def check_pcm(data: bytes) -> None:
    """SourceError where the first bytes of standard input are a container file's or cannot be audio."""
    for magic, kind in CONTAINER_MAGIC.items():
        if data.startswith(magic):
            raise SourceError(f"standard input holds a {kind} file, not raw 16-bit PCM: pipe it as {FFMPEG_HINT}")
    samples = np.frombuffer(data[: len(data) // PCM_BYTES * PCM_BYTES], dtype="<i2").astype(np.float64) / 32768
    if len(samples) and (np.sqrt(np.mean(samples**2)) > MAX_PLAUSIBLE_RMS or abs(samples.mean()) > MAX_PLAUSIBLE_MEAN):
        raise SourceError(
            "standard input is not 16-bit PCM audio (its first second is full-scale noise or offset: text, or "
            f"another format?): pipe audio as {FFMPEG_HINT}"
        )


def audio_file(path: str, realtime: bool) -> tuple[int, Iterator[np.ndarray]]:
    """The file's 16 kHz samples in pieces (float32 (S,)), paced as it plays with ``realtime``."""
    try:
        waveform = load_audio(path)
    except AudioLoadError as error:
        raise SourceError(str(error)) from None
    step = round(SAMPLE_RATE * PIECE_SECONDS)

    def pieces() -> Iterator[np.ndarray]:
        started = time.monotonic()
        for start in range(0, len(waveform), step):
            if realtime:
                time.sleep(max(0.0, started + (start + step) / SAMPLE_RATE - time.monotonic()))
            yield waveform[start : start + step]

    return SAMPLE_RATE, pieces()


def open_source(name: str, rate: int, realtime: bool) -> tuple[int, Iterator[np.ndarray]]:
    """``mic`` (the microphone), ``-`` (standard input) or a file: its rate and pieces."""
    if name == "mic":
        return microphone(rate)
    if name == "-":
        return standard_input(rate)
    return audio_file(name, realtime)
