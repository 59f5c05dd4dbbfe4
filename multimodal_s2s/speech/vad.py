"""Voice activity detection with Silero VAD, and the transcription windows made from its speech regions.

The model is the sequence ONNX export of Silero VAD (MIT) that ships inside the installed ``silero-vad``
wheel: nothing is downloaded. Its weights run in ``silero_graph.SileroMatmul`` (the same network with its STFT
and convolutions as matrix products, 2-2.5x faster than the package's ``SileroVADSequence``, which is used
instead if the two disagree on a probe signal at load) with onnxruntime on the CPU (one thread, one ONNX call
per block of 512 frames), giving one speech probability per 32 ms frame (512 samples at 16 kHz); the package's
``get_speech_timestamps_from_probs`` turns them into speech regions (a threshold with hysteresis, minimum
speech and silence durations), which ``pad_regions`` widens by a pad before speech and one after it (silero's
own padding is the same on both sides; a model trained with more silence after its utterances than the default
pad leaves, such as ``tasks/asr/espeak.yaml``'s, does better with a longer pad after, since a sentence's end
fades out below the threshold: the ``Transcriber`` pads after speech as much as its checkpoint's training did,
see ``VADOptions``). silero-vad, onnx and onnxruntime are imported when the first detector is built, not
with this module; importing ``silero_vad`` sets torch's thread count to 1 for the whole process, and
``_silero`` puts the count back.

Windows (``VoiceActivityDetector.windows``, the signature of ``energy.speech_windows``, the other splitter):
speech regions in order, made into windows by ``windows.join_regions``; a region longer than
``max_seconds`` is cut at the longest pause (frames below the lower threshold) in its window's last third,
else at its least speech-like frame; consecutive pieces are joined while the joined window spans at most
``merge_seconds``. Audio outside the windows is not decoded; a recording without speech has no windows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from importlib import resources

import numpy as np
import torch

from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.speech.silero_graph import FRAME_SAMPLES
from multimodal_s2s.speech.windows import SampleRange, join_regions, window_lengths

#: The model's frame: one speech probability per 512 samples (32 ms at 16 kHz).
VAD_FRAME_SAMPLES = FRAME_SAMPLES
SEQUENCE_MODEL = "silero_vad_16k_sequence.onnx"
MODEL_PACKAGE = "silero_vad.data"
#: The lower threshold (speech ends below it) sits this far below ``threshold``, as in silero-vad.
HYSTERESIS = 0.15
MIN_NEG_THRESHOLD = 0.01
MILLISECONDS = 1000
#: The pad before speech, and after it where neither the options nor the checkpoint choose one.
DEFAULT_SPEECH_PAD_SECONDS = 0.1
#: Before a waveform, this much of a noise floor at the level of its quietest frame (white noise; silence
#: for digital silence), so that the model's state has settled when the waveform starts: without it, 31 of
#: 300 FSDD clips that start right at the speech were missed. At the quietest frame's level, not silent,
#: so that a noise floor from the first sample is not heard as an onset.
LEAD_IN_FRAMES = 8


class VADUnavailableError(RuntimeError):
    """The silero-vad package (and its model) cannot be loaded."""


@dataclass(frozen=True)
class VADOptions:
    """How speech regions are found.

    Attributes:
        threshold: a frame whose speech probability reaches this starts speech; speech ends after
            ``min_silence_seconds`` of frames below ``threshold - 0.15``.
        min_speech_seconds: shorter regions are dropped (clicks).
        min_silence_seconds: shorter pauses do not end a region (stops inside a word).
        speech_pad_before_seconds: each region starts this much before its speech.
        speech_pad_after_seconds: and ends this much after it (the pause between two regions closer than
            the two pads together is split in their proportion). None: not chosen; a ``Transcriber`` then
            uses its checkpoint's (``Transcriber.default_pad_after_seconds``), a detector on its own
            ``DEFAULT_SPEECH_PAD_SECONDS``.
    """

    threshold: float = 0.5
    min_speech_seconds: float = 0.1
    min_silence_seconds: float = 0.2
    speech_pad_before_seconds: float = DEFAULT_SPEECH_PAD_SECONDS
    speech_pad_after_seconds: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"VAD threshold must be in (0, 1), got {self.threshold}")
        for name in ("min_speech_seconds", "min_silence_seconds", "speech_pad_before_seconds",
                     "speech_pad_after_seconds"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"VAD {name} must be a finite number >= 0, got {value}")

    @property
    def neg_threshold(self) -> float:
        return max(self.threshold - HYSTERESIS, MIN_NEG_THRESHOLD)


def _silero():
    """silero-vad's sequence model class and its timestamp state machine, torch's thread count kept."""
    threads = torch.get_num_threads()
    try:
        from silero_vad import sequence_vad, utils_vad
    except ImportError as error:
        raise VADUnavailableError(
            f"voice activity detection needs silero-vad (pip install silero-vad): {error}"
        ) from None
    finally:
        torch.set_num_threads(threads)  # silero_vad.model calls torch.set_num_threads(1) on import
    return sequence_vad, utils_vad.get_speech_timestamps_from_probs


def load_model():
    """The packaged model run by ``SileroMatmul``, or by the package's ``SileroVADSequence`` (with a warning)
    where ``SileroMatmul`` cannot read its weights or disagrees with it on ``probe_signal()``."""
    import onnx

    from multimodal_s2s.speech.silero_graph import SileroMatmul, matches_packaged

    sequence_vad, _ = _silero()
    model_file = resources.files(MODEL_PACKAGE).joinpath(SEQUENCE_MODEL)
    with resources.as_file(model_file) as path:
        if not path.is_file():
            raise VADUnavailableError(f"{path}: the silero-vad package lacks its model file")
        packaged = sequence_vad.SileroVADSequence(str(path), sampling_rate=SAMPLE_RATE)
        try:
            model = SileroMatmul(onnx.load(str(path)), sequence_vad.frame_blocks)
            if matches_packaged(model, packaged, probe_signal()):
                return model
            problem = "gives other speech probabilities"
        except (KeyError, ValueError, onnx.checker.ValidationError) as error:
            problem = f"cannot read its weights ({error!r})"
    warnings.warn(f"{path}: the fast runner of Silero VAD {problem}; using the package's (2x slower)", stacklevel=2)
    return packaged


def probe_signal() -> np.ndarray:
    """(32000,) 2 s at 16 kHz: a 150 Hz buzz with harmonics, in bursts, over faint white noise."""
    time = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    buzz = sum(np.sin(2 * np.pi * 150 * harmonic * time) / harmonic for harmonic in range(1, 8))
    bursts = np.sin(2 * np.pi * 2 * time) > 0
    noise = np.random.default_rng(0).standard_normal(len(time))
    return (0.2 * buzz * bursts + 0.003 * noise).astype(np.float32)


class VoiceActivityDetector:
    """Silero VAD on 16 kHz mono float32 waveforms: speech probabilities, regions and windows."""

    def __init__(self, options: VADOptions | None = None):
        self.options = options or VADOptions()
        self._timestamps = _silero()[1]
        self.model = load_model()

    def speech_probabilities(self, waveform: np.ndarray) -> np.ndarray:
        """(S,) -> (ceil(S / 512),) speech probability of each 32 ms frame, the model run from
        ``LEAD_IN_FRAMES`` of noise at the level of the quietest frame (``lead_in``)."""
        waveform = _check_waveform(waveform)
        if len(waveform) == 0:
            return np.zeros(0, dtype=np.float32)
        probabilities = self.model.audio_forward(np.concatenate([lead_in(waveform), waveform]), SAMPLE_RATE)
        return probabilities[LEAD_IN_FRAMES:]

    def speech_regions(self, waveform: np.ndarray, probabilities: np.ndarray | None = None) -> list[SampleRange]:
        """(S,) -> (start, end) sample ranges of speech, padded, in order and disjoint."""
        if probabilities is None:
            probabilities = self.speech_probabilities(waveform)
        options = self.options
        regions = self._timestamps(
            probabilities,
            sampling_rate=SAMPLE_RATE,
            threshold=options.threshold,
            neg_threshold=options.neg_threshold,
            min_speech_duration_ms=options.min_speech_seconds * MILLISECONDS,
            min_silence_duration_ms=options.min_silence_seconds * MILLISECONDS,
            speech_pad_ms=0,  # silero pads both sides alike: pad_regions pads each side its own
            audio_length_samples=len(waveform),
        )
        pad_after = options.speech_pad_after_seconds
        pad_after = DEFAULT_SPEECH_PAD_SECONDS if pad_after is None else pad_after
        before, after = (round(seconds * SAMPLE_RATE) for seconds in (options.speech_pad_before_seconds, pad_after))
        return pad_regions([(int(r["start"]), int(r["end"])) for r in regions], before, after, len(waveform))

    def windows(
        self, waveform: np.ndarray, max_seconds: float, merge_seconds: float | None = None
    ) -> list[SampleRange]:
        """(S,) waveform -> (start, end) sample ranges to decode, in order, disjoint, each at most
        ``max_seconds``; regions are joined while the window spans at most ``merge_seconds``
        (default ``max_seconds``). See the module docstring."""
        probabilities = self.speech_probabilities(waveform)
        max_samples, merge_samples = window_lengths(max_seconds, merge_seconds, SAMPLE_RATE, VAD_FRAME_SAMPLES)
        regions = self.speech_regions(waveform, probabilities)
        return join_regions(regions, max_samples, merge_samples, partial(self._pause_inside, probabilities))

    def _pause_inside(self, probabilities: np.ndarray, first: int, last: int) -> int:
        """A sample in (first, last]: the middle of the longest run of frames below the lower threshold
        whose frames lie inside, else the middle of the least speech-like frame."""
        first_frame = -(-first // VAD_FRAME_SAMPLES)
        frames = probabilities[first_frame : last // VAD_FRAME_SAMPLES]  # frames wholly inside
        if len(frames) == 0:
            return last
        quiet = np.r_[False, frames < self.options.neg_threshold, False].astype(np.int8)
        edges = np.flatnonzero(np.diff(quiet))  # run starts and ends, alternating
        if len(edges):
            run_starts, run_ends = edges[0::2], edges[1::2]
            longest = int(np.argmax(run_ends - run_starts))
            middle = (run_starts[longest] + run_ends[longest]) * VAD_FRAME_SAMPLES // 2
        else:
            middle = int(np.argmin(frames)) * VAD_FRAME_SAMPLES + VAD_FRAME_SAMPLES // 2
        return min(max(first_frame * VAD_FRAME_SAMPLES + middle, first + 1), last)


def pad_regions(regions: list[SampleRange], before: int, after: int, length: int) -> list[SampleRange]:
    """Disjoint sample ranges in order, each widened by ``before`` samples before and ``after`` after, inside
    [0, length]; two ranges closer than ``before + after`` meet at the point that splits their pause in
    proportion to the pads (silero-vad splits it in half, its pads being equal)."""
    starts = [max(start - before, 0) for start, _ in regions]
    ends = [min(end + after, length) for _, end in regions]
    for index in range(len(regions) - 1):
        pause = regions[index + 1][0] - regions[index][1]
        if pause < before + after:
            ends[index] = starts[index + 1] = regions[index][1] + pause * after // (before + after)
    return list(zip(starts, ends, strict=True))


def lead_in(waveform: np.ndarray) -> np.ndarray:
    """(S,) -> (LEAD_IN_FRAMES * 512,) white noise at the RMS of the quietest whole frame of ``waveform``."""
    whole = len(waveform) // VAD_FRAME_SAMPLES * VAD_FRAME_SAMPLES
    frames = (waveform[:whole] if whole else waveform).reshape(max(whole // VAD_FRAME_SAMPLES, 1), -1)
    level = float(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)).min())
    noise = np.random.default_rng(0).standard_normal(LEAD_IN_FRAMES * VAD_FRAME_SAMPLES)
    return (noise * level).astype(np.float32)


def _check_waveform(waveform: np.ndarray) -> np.ndarray:
    """A 1-D float array as contiguous float32; ValueError otherwise."""
    if not isinstance(waveform, np.ndarray) or waveform.ndim != 1 or not np.issubdtype(waveform.dtype, np.floating):
        raise ValueError(
            f"VAD needs a 1-D float waveform at {SAMPLE_RATE} Hz, got {getattr(waveform, 'shape', type(waveform))}"
        )
    return np.ascontiguousarray(waveform, dtype=np.float32)
