"""Transcriber: recordings of any length in (paths, arrays, tensors), timestamped transcripts out.

A recording is cut into windows of speech (``speech_windows``), windows are decoded in batches
across recordings, and each window becomes one ``Segment`` whose start and end are the window's
bounds, so timestamps are monotonic. With a CTC head in the checkpoint and a beam, the beam's
hypotheses are rescored as in ESPnet's hybrid decoding: ``(1 - w) * log P_attention + w * log P_ctc``,
which penalizes hypotheses that the audio does not support (dropped or repeated words).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from multimodal_s2s.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE, AudioFeatures, AudioLoadError, as_waveform
from multimodal_s2s.checkpoint import Checkpoint, Task
from multimodal_s2s.data.text_batches import pad_last_axis
from multimodal_s2s.decoding import DecodingOptions, decode_encoded, ranking_score
from multimodal_s2s.models.ctc import CTC_HEAD_PREFIX, ctc_head_from_weights
from multimodal_s2s.pipelines.text import TextOutPipeline
from multimodal_s2s.speech_windows import SampleRange, speech_windows
from multimodal_s2s.types import SequenceOutput

AudioInput = str | Path | np.ndarray | Tensor
MIN_WINDOW_SECONDS = 0.1  # shorter windows are zero-padded (the conv frontend needs a few frames)
DECODE_LENGTH_MARGIN = 1.5  # decoding may emit this many times the training data's most tokens per second
MIN_DECODE_TOKENS = 16
DEFAULT_CTC_WEIGHT = 0.3
DEFAULT_BATCH_SIZE = 8


@dataclass
class Segment:
    """A window's transcript; start and end in seconds from the start of the recording."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """One recording's transcript: its duration (s), its segments in order, and where it came from."""

    duration: float
    segments: list[Segment]
    source: str = ""

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments if segment.text)


@dataclass
class TranscriptionItem:
    """One input of ``Transcriber.stream``: its transcript, or the one-line reason it has none."""

    index: int
    source: str
    transcript: Transcript | None = None
    error: str | None = None


@dataclass
class _Pending:
    """A loaded recording whose windows are being decoded."""

    index: int
    source: str
    waveform: np.ndarray
    windows: list[SampleRange]
    texts: dict[int, str] = field(default_factory=dict)

    def transcript(self) -> Transcript:
        segments = [
            Segment(round(start / SAMPLE_RATE, 3), round(end / SAMPLE_RATE, 3), self.texts[number])
            for number, (start, end) in enumerate(self.windows)
        ]
        return Transcript(round(len(self.waveform) / SAMPLE_RATE, 3), segments, self.source)


class Transcriber(TextOutPipeline):
    """A speech-recognition checkpoint ready for inference.

    >>> transcriber = Transcriber.from_checkpoint("runs/asr/espeak/version_0/checkpoints/last.ckpt")
    >>> transcriber(["talk.flac"])[0].text
    """

    task = Task.ASR

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "auto"):
        super().__init__(checkpoint, device)
        self.features = AudioFeatures(self.model.encoder.info.n_mels).to(self.device).eval()
        head = ctc_head_from_weights(checkpoint.weights(CTC_HEAD_PREFIX))
        self.ctc_head = None if head is None else head.to(self.device)
        audio = self.header.preprocessing
        self.max_seconds = min(audio.max_seconds, MAX_WINDOW_SECONDS)
        self.merge_seconds = min(audio.median_seconds, self.max_seconds)

    def __call__(
        self,
        audio: Sequence[AudioInput],
        sample_rate: int = SAMPLE_RATE,
        beam_size: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        window_seconds: float | None = None,
        ctc_weight: float | None = None,
    ) -> list[Transcript]:
        """Transcribe recordings of any length: file paths (any common format, rate and channel count),
        or samples (S,) / (channels, S) at ``sample_rate``. Raises AudioLoadError (one line) for an input
        that is not audio. See ``stream`` for the options."""
        items = sorted(self.stream(audio, sample_rate, beam_size, batch_size, window_seconds, ctc_weight, True),
                       key=lambda item: item.index)  # fmt: skip
        return [item.transcript for item in items]

    def stream(
        self,
        audio: Sequence[AudioInput],
        sample_rate: int = SAMPLE_RATE,
        beam_size: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        window_seconds: float | None = None,
        ctc_weight: float | None = None,
        raise_errors: bool = False,
    ) -> Iterator[TranscriptionItem]:
        """Yield each input's TranscriptionItem as soon as all its windows are decoded (recordings are read
        one at a time; windows of several recordings share batches of ``batch_size``).

        ``window_seconds``: the longest window (default and cap: the checkpoint's longest training
        utterance, <= 30 s); ``ctc_weight``: the CTC rescoring weight of the beam (default 0.3 with a
        CTC head; 0 turns it off). Unreadable inputs are yielded with their error, or raised with
        ``raise_errors``."""
        self.options(beam_size)  # checks the decoding options before any file is read
        if batch_size < 1 or (window_seconds is not None and window_seconds <= 0):
            raise ValueError(f"batch size must be >= 1 and window seconds > 0, got {batch_size}, {window_seconds}")
        queue: list[tuple[_Pending, int]] = []  # (recording, window number) not decoded yet
        for index, item in enumerate(audio):
            source = str(item) if isinstance(item, str | Path) else f"<input {index}>"
            try:
                waveform = as_waveform(item, sample_rate)
            except AudioLoadError as error:
                if raise_errors:
                    raise
                yield TranscriptionItem(index, source, error=str(error))
                continue
            pending = _Pending(index, source, waveform, self.windows(waveform, window_seconds))
            if not pending.windows:  # silence only: an empty transcript
                yield TranscriptionItem(index, source, pending.transcript())
            queue += [(pending, number) for number in range(len(pending.windows))]
            while len(queue) >= batch_size:
                yield from self._decode_queued(queue[:batch_size], beam_size, ctc_weight)
                queue = queue[batch_size:]
        if queue:
            yield from self._decode_queued(queue, beam_size, ctc_weight)

    def _decode_queued(self, batch, beam_size, ctc_weight) -> Iterator[TranscriptionItem]:
        texts = self.recognize([pending.waveform[slice(*pending.windows[n])] for pending, n in batch], beam_size,
                               ctc_weight)  # fmt: skip
        for (pending, number), text in zip(batch, texts, strict=True):
            pending.texts[number] = text
            if len(pending.texts) == len(pending.windows):
                yield TranscriptionItem(pending.index, pending.source, pending.transcript())

    def windows(self, waveform: np.ndarray, window_seconds: float | None = None) -> list[SampleRange]:
        """Where to cut ``waveform``: windows of at most ``window_seconds`` (capped by the checkpoint's)."""
        max_seconds = min(window_seconds or self.max_seconds, MAX_WINDOW_SECONDS)
        return speech_windows(waveform, max_seconds, min(self.merge_seconds, max_seconds))

    def window_options(self, beam_size: int | None = None, window_seconds: float | None = None) -> DecodingOptions:
        """Decoding options for windows of up to ``window_seconds`` (default: the longest window)."""
        seconds = window_seconds or self.max_seconds
        tokens_per_second = self.header.preprocessing.tokens_per_second
        max_length = max(math.ceil(tokens_per_second * seconds * DECODE_LENGTH_MARGIN), MIN_DECODE_TOKENS)
        return self.options(beam_size, max_length=max_length)

    @torch.no_grad()
    def recognize(
        self,
        waveforms: list[np.ndarray],
        beam_size: int | None = None,
        ctc_weight: float | None = None,
        options: DecodingOptions | None = None,
    ) -> list[str]:
        """Transcribe short waveforms (16 kHz windows) in one batch; ``options`` replaces the decoding options
        made from ``beam_size`` and the windows' length."""
        min_samples = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
        tensors = [torch.from_numpy(np.pad(w, (0, max(min_samples - len(w), 0)))) for w in waveforms]
        inputs, lengths = pad_last_axis(tensors, 0.0)  # (B, S), (B,)
        features, frame_lengths = self.features(inputs.to(self.device), lengths.to(self.device))
        encoded = self.model.encode(features, frame_lengths)
        options = options or self.window_options(beam_size, max(len(t) for t in tensors) / SAMPLE_RATE)
        results = decode_encoded(self.model, encoded, options)
        weight = DEFAULT_CTC_WEIGHT if ctc_weight is None else ctc_weight
        best = [result.tokens for result in results]
        if self.ctc_head is not None and weight > 0 and options.beam_size > 1:
            best = [self._rescore(encoded, row, result.n_best, weight, options) for row, result in enumerate(results)]
        return [self.header.tokenizer.decode(tokens) for tokens in best]

    def _rescore(
        self, encoded: SequenceOutput, row: int, n_best: list[tuple[list[int], float]], weight: float, options
    ) -> list[int]:
        """The hypothesis of ``n_best`` (tokens, attention ranking score) with the best combined score; the CTC
        log-probability gets the same length normalization as the attention score."""
        one = SequenceOutput(memory=encoded.memory[row : row + 1], mask=encoded.mask[row : row + 1])
        ctc_log_probs = self.ctc_head.sequence_log_probs(one, [tokens for tokens, _ in n_best])  # (H,)
        scored_lengths = torch.tensor([len(tokens) + 1 for tokens, _ in n_best], device=ctc_log_probs.device)
        ctc_scores = ranking_score(ctc_log_probs, scored_lengths, options.length_penalty)
        attention_scores = torch.tensor([score for _, score in n_best], device=ctc_scores.device)
        combined = (1 - weight) * attention_scores + weight * ctc_scores
        return n_best[int(combined.argmax())][0]
