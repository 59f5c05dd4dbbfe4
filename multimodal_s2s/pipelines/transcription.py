"""Transcriber: recordings of any length in (paths, arrays, tensors), timestamped transcripts out.

A recording is cut into windows of speech: the speech regions that Silero VAD finds (``speech.vad``; the default),
padded (after speech: as much silence as the checkpoint's training put after utterances, at least 0.1 s,
unless the options say; ``Transcriber.default_pad_after_seconds``), joined up to the checkpoint's median
training utterance and cut at pauses below its longest one, or the energy splitter's windows
(``speech.energy``). Audio outside the windows is never decoded: a recording without speech gets an empty
transcript. Windows of several recordings share batches; each decoded window is checked as whisper does and
dropped or re-decoded when improbable (``window_decoding``, ``speech.fallback``), and becomes one ``Segment`` (with
its words on request) placed at the window's bounds, so timestamps are monotonic. Where a CPU core is left
over (decoding on a GPU, or torch using fewer threads than the process may use), a background thread reads
the next recordings and finds their windows while the model decodes (``prefetch``); on a CPU that decoding
already fills, they are read in turn, since a third busy thread slows torch's more than it saves
(``benchmarks/longform_speed``).
Options: ``TranscriptionOptions``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multimodal_s2s.checkpoint import Checkpoint, Task
from multimodal_s2s.decoding import DecodingOptions
from multimodal_s2s.pipelines.live import StreamingTranscriber
from multimodal_s2s.pipelines.prefetch import prefetch
from multimodal_s2s.pipelines.transcription_options import (
    PLAIN_DECODING,
    READ_AHEAD_SECONDS,
    LiveOptions,
    TranscriptionOptions,
    WindowSplitter,
)
from multimodal_s2s.pipelines.transcripts import Segment, Transcript, TranscriptionItem
from multimodal_s2s.pipelines.window_decoding import WindowDecodingPipeline
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE, AudioLoadError, as_waveform
from multimodal_s2s.speech.energy import speech_sample_regions, speech_windows
from multimodal_s2s.speech.vad import DEFAULT_SPEECH_PAD_SECONDS, VADOptions, VoiceActivityDetector
from multimodal_s2s.speech.windows import SampleRange
from multimodal_s2s.speech.word_timing import TIME_DIGITS
from multimodal_s2s.threads import usable_cores

AudioInput = str | Path | np.ndarray | Tensor
#: ``progress(windows found, windows decoded)``, called as recordings are cut and batches decoded.
Progress = Callable[[int, int], None]


@dataclass
class _Pending:
    """A recording read and cut into windows (or the reason it could not be read), being decoded."""

    index: int
    source: str
    waveform: np.ndarray | None = None
    windows: list[SampleRange] = field(default_factory=list)
    error: str | None = None
    segments: dict[int, Segment | None] = field(default_factory=dict)  # window number -> segment or dropped

    @property
    def samples(self) -> int:
        return 0 if self.waveform is None else len(self.waveform)

    @property
    def done(self) -> bool:
        return len(self.segments) == len(self.windows)

    def item(self) -> TranscriptionItem:
        if self.error is not None:
            return TranscriptionItem(self.index, self.source, error=self.error)
        decoded = [self.segments[n] for n in range(len(self.windows)) if self.segments[n] is not None]
        spoken = [segment for segment in decoded if segment.text]
        duration = round(self.samples / SAMPLE_RATE, TIME_DIGITS)
        transcript = Transcript(duration, spoken, self.source, unheard_windows=len(decoded) - len(spoken))
        return TranscriptionItem(self.index, self.source, transcript)


class Transcriber(WindowDecodingPipeline):
    """A speech-recognition checkpoint ready for inference.

    >>> transcriber = Transcriber.from_checkpoint("runs/asr/espeak/version_0/checkpoints/last.ckpt")
    >>> transcriber(["talk.flac"])[0].text
    >>> transcriber(["talk.flac"], word_timestamps=True)[0].segments[0].words
    """

    task = Task.ASR

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "auto"):
        super().__init__(checkpoint, device)
        self._detectors: dict[VADOptions, VoiceActivityDetector] = {}

    def __call__(
        self,
        audio: Sequence[AudioInput],
        sample_rate: int = SAMPLE_RATE,
        options: TranscriptionOptions | None = None,
        **overrides: Any,
    ) -> list[Transcript]:
        """Transcribe recordings of any length: file paths (any common format, rate and channel count), or
        samples (S,) / (channels, S) at ``sample_rate``. ``options`` and keyword overrides of its fields:
        see ``TranscriptionOptions``. Raises AudioLoadError (one line) for an input that is not audio."""
        items = sorted(self.stream(audio, sample_rate, options, raise_errors=True, **overrides), key=lambda i: i.index)
        return [item.transcript for item in items]

    def stream(
        self,
        audio: Iterable[AudioInput],
        sample_rate: int = SAMPLE_RATE,
        options: TranscriptionOptions | None = None,
        raise_errors: bool = False,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> Iterator[TranscriptionItem]:
        """Yield each input's TranscriptionItem as soon as all its windows are decoded (windows of several
        recordings share batches of ``batch_size``). Unreadable inputs are yielded with their error, or
        raised with ``raise_errors``. The options are checked at once (ValueError, DecodingOptionsError,
        AlignmentError, VADUnavailableError), before any input is read."""
        options = self.resolve_options(options, **overrides)
        splitter = self.splitter(options)
        prepare = partial(self._prepare, sample_rate=sample_rate, splitter=splitter, raise_errors=raise_errors)
        items = ((index, item) for index, item in enumerate(audio))
        read_ahead = self.read_ahead_seconds(options)
        if read_ahead > 0:
            budget = read_ahead * SAMPLE_RATE
            prepared = prefetch(items, prepare, size=lambda pending: pending.samples, budget=budget)
        else:
            prepared = map(prepare, items)
        return self._decode_stream(prepared, options, progress or (lambda found, decoded: None))

    def live(
        self,
        sample_rate: int = SAMPLE_RATE,
        options: TranscriptionOptions | None = None,
        live: LiveOptions | None = None,
        **overrides: Any,
    ) -> StreamingTranscriber:
        """A transcriber of one live stream of audio at ``sample_rate`` Hz, fed piece by piece as it arrives
        (``pipelines.live``); ``options`` and ``overrides`` as for ``stream`` (word timestamps always on),
        ``live``: chunk, buffer bound, lag. Raises AudioStreamError for an impossible rate."""
        return StreamingTranscriber(self, sample_rate, self.resolve_options(options, **overrides), live)

    def read_ahead_seconds(self, options: TranscriptionOptions) -> float:
        """``options.read_ahead_seconds``, or when None: ``READ_AHEAD_SECONDS`` where a CPU core is left over
        by the decoding (a GPU decodes, or torch uses fewer threads than this process may), else 0."""
        if options.read_ahead_seconds is not None:
            return options.read_ahead_seconds
        spare_core = self.device.type != "cpu" or usable_cores() > torch.get_num_threads()
        return READ_AHEAD_SECONDS if spare_core else 0.0

    @property
    def default_pad_after_seconds(self) -> float:
        """The VAD's pad after speech where the options leave it None: the silence that training put after
        utterances (``AudioPreprocessing.silence_pad_seconds``) where it exceeds ``DEFAULT_SPEECH_PAD_SECONDS``
        (0.1 s), else 0.1 s. A window then ends as the model's training clips did: the espeak recipe's model
        (0.3 s) reads sentence ends cut 0.1 s after the VAD's end of speech wrongly, the FSDD recipe's (0.1 s)
        reads a digit followed by 0.3 s of silence as another (tasks/asr/README.md, long recordings)."""
        return max(DEFAULT_SPEECH_PAD_SECONDS, self.header.preprocessing.silence_pad_seconds)

    def resolve_options(self, options: TranscriptionOptions | None = None, **overrides: Any) -> TranscriptionOptions:
        """``options`` (default: the defaults) with ``overrides``, checked against this checkpoint, the VAD's
        pad after speech chosen where it is None (``default_pad_after_seconds``)."""
        options = (options or TranscriptionOptions()).updated(overrides)
        self.options(options.beam_size)  # DecodingOptionsError for an impossible beam
        self.check_word_timestamps(options)
        if options.vad.speech_pad_after_seconds is None:
            vad = replace(options.vad, speech_pad_after_seconds=self.default_pad_after_seconds)
            options = replace(options, vad=vad)
        return options

    def splitter(self, options: TranscriptionOptions) -> WindowSplitter:
        """The function that cuts a 16 kHz waveform (S,) into windows under ``options``."""
        if callable(options.windows):
            return options.windows
        max_seconds = min(options.window_seconds or self.max_seconds, MAX_WINDOW_SECONDS)
        merge_seconds = min(self.merge_seconds, max_seconds)
        if options.windows == "energy":
            return partial(speech_windows, max_seconds=max_seconds, merge_seconds=merge_seconds)
        return partial(self._detector(options.vad).windows, max_seconds=max_seconds, merge_seconds=merge_seconds)

    def speech_finder(self, options: TranscriptionOptions) -> Callable[[np.ndarray], list[SampleRange]]:
        """The function that finds the padded speech regions of a 16 kHz waveform (S,) under ``options``: the
        VAD's (``windows="vad"``) or the energy splitter's (``"energy"``); ValueError for a splitter function."""
        if callable(options.windows):
            raise ValueError("speech regions come from windows 'vad' or 'energy', not from a splitter function")
        if options.windows == "energy":
            return speech_sample_regions
        return self._detector(options.vad).speech_regions

    def _detector(self, vad: VADOptions) -> VoiceActivityDetector:
        if vad not in self._detectors:
            self._detectors[vad] = VoiceActivityDetector(vad)
        return self._detectors[vad]

    def windows(
        self, waveform: np.ndarray, options: TranscriptionOptions | None = None, **overrides: Any
    ) -> list[SampleRange]:
        """Where ``options`` cut a 16 kHz ``waveform`` (S,): (start, end) sample ranges, in order."""
        return self.splitter(self.resolve_options(options, **overrides))(waveform)

    def recognize(
        self,
        waveforms: list[np.ndarray],
        beam_size: int | None = None,
        ctc_weight: float | None = None,
        options: DecodingOptions | None = None,
    ) -> list[str]:
        """Transcribe short 16 kHz waveforms whole, in one batch, without checks; ``options`` replaces the
        decoding options made from ``beam_size`` and the waveforms' length."""
        plain = replace(PLAIN_DECODING, beam_size=beam_size, ctc_weight=ctc_weight)
        spans = [(0.0, len(waveform) / SAMPLE_RATE) for waveform in waveforms]
        return [segment.text for segment in self.decode_windows(waveforms, spans, plain, options)]

    def _prepare(
        self, pair: tuple[int, AudioInput], sample_rate: int, splitter: WindowSplitter, raise_errors: bool
    ) -> _Pending:
        """Read input ``pair`` (index, audio) and cut it into windows (in the background thread)."""
        index, item = pair
        source = str(item) if isinstance(item, str | Path) else f"<input {index}>"
        try:
            waveform = as_waveform(item, sample_rate)
        except AudioLoadError as error:
            if raise_errors:
                raise
            return _Pending(index, source, error=str(error))
        return _Pending(index, source, waveform, splitter(waveform))

    def _decode_stream(
        self, prepared: Iterable[_Pending], options: TranscriptionOptions, progress: Progress
    ) -> Iterator[TranscriptionItem]:
        queue: list[tuple[_Pending, int]] = []  # (recording, window number) not decoded yet
        found = decoded = 0
        for pending in prepared:
            found += len(pending.windows)
            progress(found, decoded)
            if pending.done:  # unreadable, or no speech: nothing to decode
                yield pending.item()
            queue += [(pending, number) for number in range(len(pending.windows))]
            while len(queue) >= options.batch_size:
                yield from self._decode_batch(queue[: options.batch_size], options)
                del queue[: options.batch_size]
                decoded += options.batch_size
                progress(found, decoded)
        if queue:  # less than a batch left
            yield from self._decode_batch(queue, options)
            progress(found, decoded + len(queue))

    def _decode_batch(
        self, batch: list[tuple[_Pending, int]], options: TranscriptionOptions
    ) -> Iterator[TranscriptionItem]:
        """Decode the windows ``batch`` (recording, window number); yield the recordings it completes."""
        ranges = [pending.windows[number] for pending, number in batch]
        pieces = [pending.waveform[start:end] for (pending, _), (start, end) in zip(batch, ranges, strict=True)]
        spans = [(start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in ranges]
        for (pending, number), segment in zip(batch, self.decode_windows(pieces, spans, options), strict=True):
            pending.segments[number] = segment
            if pending.done:
                yield pending.item()
