"""Long-form speech recognition with an ASR checkpoint: windows cut at silences, batched decoding,
timestamped segments, and their txt / json / srt renderings.

A recording is cut into windows before decoding (``speech_windows``): frames quieter than the
recording's loud frames by ``SILENCE_BELOW_PEAK_DB`` (or than ``SILENCE_FLOOR_DB`` dBFS) are
silence; speech regions split by pauses of at least ``MIN_PAUSE_SECONDS`` are joined into windows up
to the length of a typical training utterance, never longer than the checkpoint's longest training
utterance nor ``audio.MAX_WINDOW_SECONDS`` (30 s); a region longer than that is cut at its quietest
frame near the window's end. Silence between windows is not decoded. Each window becomes one
``Segment`` whose start and end are the window's bounds, so timestamps are monotonic.

With a CTC head in the checkpoint (``lit.speech.CTCHead``) and a beam, the beam's hypotheses are
rescored as in ESPnet's hybrid decoding: ``(1 - w) * log P_attention + w * log P_ctc``, which
penalizes hypotheses that the audio does not support (dropped or repeated words).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from multimodal_s2s.audio import HOP_LENGTH, MAX_WINDOW_SECONDS, SAMPLE_RATE
from multimodal_s2s.checkpoint import CheckpointError, read_checkpoint
from multimodal_s2s.data.text_batches import pad_last_axis
from multimodal_s2s.decoding import DecodingOptions, decode_encoded, ranking_score
from multimodal_s2s.inference import Seq2SeqPipeline, resolve_device
from multimodal_s2s.lit.speech import AudioFeatures, CTCHead, ctc_head_from_checkpoint
from multimodal_s2s.tokenizers import TokenizerFormatError
from multimodal_s2s.types import SequenceOutput

ASR_TASK = "asr"
SILENCE_BELOW_PEAK_DB = 40.0
SILENCE_FLOOR_DB = -60.0
LOUD_PERCENTILE = 99
POWER_EPSILON = 1e-10  # added to the mean power of a frame before the log (digital silence = -100 dB)
MIN_PAUSE_SECONDS = 0.3
SPEECH_PAD_SECONDS = 0.1
MIN_WINDOW_SECONDS = 0.1  # shorter windows are zero-padded (the conv frontend needs a few frames)
SPLIT_SEARCH_FRACTION = 1 / 3  # an over-long region is cut at the quietest frame in its window's last third
DECODE_LENGTH_MARGIN = 1.5  # decoding may emit this many times the training data's most tokens per second
MIN_DECODE_TOKENS = 16
DEFAULT_CTC_WEIGHT = 0.3
FORMATS = ("txt", "json", "srt")
SampleRange = tuple[int, int]


@dataclass
class Segment:
    """A window's transcript; start and end in seconds from the start of the recording."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    duration: float  # seconds
    segments: list[Segment]

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments if segment.text)


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


class SpeechRecognizer:
    """An ASR checkpoint ready to transcribe: waveforms (16 kHz mono float32) in, text out."""

    def __init__(self, pipeline: Seq2SeqPipeline, ctc_head: CTCHead | None = None):
        if pipeline.preprocess.get("task") != ASR_TASK:
            raise CheckpointError(f"a {pipeline.task} checkpoint, not a speech-recognition one")
        self.pipeline = pipeline
        self.model = pipeline.model
        self.features = AudioFeatures(self.model.encoder.info.n_mels).to(pipeline.device).eval()
        self.ctc_head = ctc_head.to(pipeline.device).eval() if ctc_head is not None else None
        self.tokens_per_second = float(pipeline.preprocess["tokens_per_second"])
        self.max_seconds = min(float(pipeline.preprocess["max_seconds"]), MAX_WINDOW_SECONDS)
        self.merge_seconds = float(pipeline.preprocess.get("median_seconds", self.max_seconds))

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> SpeechRecognizer:
        """Read an ASR checkpoint; CheckpointError (one line naming the file) when it is not usable."""
        checkpoint = read_checkpoint(path, "seq2seq")
        try:
            pipeline = Seq2SeqPipeline(checkpoint, resolve_device(device))
            return cls(pipeline, ctc_head_from_checkpoint(checkpoint))
        except (KeyError, TypeError, RuntimeError, TokenizerFormatError, CheckpointError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CheckpointError(f"{path}: cannot transcribe with this checkpoint ({reason})") from None

    def options(self, beam_size: int | None = None, window_seconds: float | None = None) -> DecodingOptions:
        """Decoding options for windows of up to ``window_seconds`` (default: the longest window)."""
        seconds = window_seconds or self.max_seconds
        max_length = max(math.ceil(self.tokens_per_second * seconds * DECODE_LENGTH_MARGIN), MIN_DECODE_TOKENS)
        beam_size = beam_size or self.pipeline.decoding.get("beam_size", 1)
        return self.pipeline.options(beam_size, n_best=beam_size, max_length=max_length)

    def windows(self, waveform: np.ndarray, window_seconds: float | None = None) -> list[SampleRange]:
        """Where to cut ``waveform``: windows of at most ``window_seconds`` (capped by the checkpoint's)."""
        max_seconds = min(window_seconds or self.max_seconds, MAX_WINDOW_SECONDS)
        return speech_windows(waveform, max_seconds, min(self.merge_seconds, max_seconds))

    @torch.no_grad()
    def recognize(
        self,
        waveforms: list[np.ndarray],
        beam_size: int | None = None,
        ctc_weight: float | None = None,
        options: DecodingOptions | None = None,
    ) -> list[str]:
        """Transcribe short waveforms (windows) in one batch; ``ctc_weight`` (default 0.3 with a CTC head
        and a beam; 0 turns rescoring off) weighs the CTC score of each hypothesis of the beam.
        ``options`` replaces the decoding options made from ``beam_size`` and the windows' length."""
        min_samples = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
        tensors = [torch.from_numpy(np.pad(w, (0, max(min_samples - len(w), 0)))) for w in waveforms]
        inputs, lengths = pad_last_axis(tensors, 0.0)  # (B, S), (B,)
        device = self.pipeline.device
        features, frame_lengths = self.features(inputs.to(device), lengths.to(device))
        encoded = self.model.encode(features, frame_lengths)
        options = options or self.options(beam_size, max(len(t) for t in tensors) / SAMPLE_RATE)
        results = decode_encoded(self.model, encoded, options)
        weight = DEFAULT_CTC_WEIGHT if ctc_weight is None else ctc_weight
        best = [result.tokens for result in results]
        if self.ctc_head is not None and weight > 0 and options.beam_size > 1:
            best = [self._rescore(encoded, row, result.n_best, weight, options) for row, result in enumerate(results)]
        return [self.pipeline.tokenizer.decode(tokens) for tokens in best]

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

    def transcribe(self, waveform: np.ndarray, beam_size: int | None = None, batch_size: int = 8) -> Transcript:
        """One recording of any length -> its Transcript (windows decoded ``batch_size`` at a time)."""
        windows = self.windows(waveform)
        texts: list[str] = []
        for first in range(0, len(windows), batch_size):
            chunk = windows[first : first + batch_size]
            texts += self.recognize([waveform[start:end] for start, end in chunk], beam_size)
        return make_transcript(len(waveform), windows, texts)


def make_transcript(num_samples: int, windows: list[SampleRange], texts: list[str]) -> Transcript:
    segments = [
        Segment(round(start / SAMPLE_RATE, 3), round(end / SAMPLE_RATE, 3), text)
        for (start, end), text in zip(windows, texts, strict=True)
    ]
    return Transcript(duration=round(num_samples / SAMPLE_RATE, 3), segments=segments)


def srt_timestamp(seconds: float) -> str:
    """Seconds -> ``HH:MM:SS,mmm`` (SubRip)."""
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def render(transcript: Transcript, kind: str, audio_path: str = "") -> str:
    """The transcript as ``txt`` (the text and a newline), ``json`` (audio, duration, text, segments) or
    ``srt`` (one numbered cue per non-empty segment)."""
    if kind == "txt":
        return transcript.text + "\n"
    if kind == "json":
        record = {"audio": audio_path, "duration": transcript.duration, "text": transcript.text}
        return json.dumps({**record, "segments": [asdict(s) for s in transcript.segments]}, ensure_ascii=False) + "\n"
    if kind == "srt":
        spoken = [segment for segment in transcript.segments if segment.text]
        return "".join(
            f"{number}\n{srt_timestamp(s.start)} --> {srt_timestamp(s.end)}\n{s.text}\n\n"
            for number, s in enumerate(spoken, start=1)
        )
    raise ValueError(f"unknown transcript format {kind!r}; choose from {', '.join(FORMATS)}")
