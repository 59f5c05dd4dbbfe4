"""OnnxTranscriber: ``Transcriber`` on an export folder (``mms2s export``), decoding with ``onnx_runtime``.

Everything around the model is the Transcriber's own: reading and resampling, the VAD (silero-vad, which
imports torch) or energy windows, batching windows across recordings, whisper's checks and temperature
fallback (sampling with numpy's generator), segments placed at the windows' bounds. What the export lacks:
word timestamps (refused in one line) and the CTC rescoring of a beam (the export holds no CTC head: a beam's
answer is the best length-penalized score). Features: numpy log-mel with the export's mel filterbank.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from multimodal_s2s.checkpoint import CheckpointHeader
from multimodal_s2s.decoding import DecodingOptions
from multimodal_s2s.onnx_runtime.features import log_mel
from multimodal_s2s.onnx_runtime.manifest import MEL_FILTERS_FILE
from multimodal_s2s.onnx_runtime.model import OnnxTextModel
from multimodal_s2s.onnx_runtime.search import no_speech_probabilities, search
from multimodal_s2s.pipelines.transcription import Transcriber
from multimodal_s2s.pipelines.transcription_options import TranscriptionOptions
from multimodal_s2s.pipelines.transcripts import Segment
from multimodal_s2s.pipelines.window_decoding import MIN_WINDOW_SECONDS
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE
from multimodal_s2s.speech.fallback import WindowDecoding, decode_with_fallback
from multimodal_s2s.speech.word_timing import TIME_DIGITS, AlignmentError


class OnnxTranscriber(Transcriber):
    """Recordings in, timestamped transcripts out, from an ASR export folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None):
        self.onnx = OnnxTextModel(folder, threads=threads)
        self.path = folder
        self.header = CheckpointHeader.from_dict(self.onnx.manifest.header)
        self.training_steps = None
        self.device = torch.device("cpu")
        self.filters = np.load(self.onnx.manifest.file(MEL_FILTERS_FILE))
        self.ctc_head = None
        audio = self.header.preprocessing
        self.max_seconds = min(audio.max_seconds, MAX_WINDOW_SECONDS)
        self.merge_seconds = min(audio.median_seconds, self.max_seconds)
        self._detectors = {}

    def check_word_timestamps(self, options: TranscriptionOptions) -> None:
        if options.word_timestamps:
            raise AlignmentError(f"{self.path}: word timestamps are not offered on an ONNX export (use the checkpoint)")

    def decode_windows(
        self,
        waveforms: Sequence[np.ndarray],
        spans: Sequence[tuple[float, float]],
        options: TranscriptionOptions,
        decoding: DecodingOptions | None = None,
    ) -> list[Segment | None]:
        """As ``WindowDecodingPipeline.decode_windows``, on onnxruntime: a segment per window or None."""
        min_samples = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
        features, lengths = log_mel([np.pad(w, (0, max(min_samples - len(w), 0))) for w in waveforms], self.filters)
        memory = self.onnx.encode(features, lengths)
        decoding = decoding or self.window_options(options.beam_size, max(len(w) for w in waveforms) / SAMPLE_RATE)
        policy = options.fallback_policy()
        no_speech = [None] * len(waveforms)
        if policy.thresholds.no_speech is not None:
            no_speech = no_speech_probabilities(self.onnx, memory).tolist()

        def decode_batch(rows: Sequence[int], options: DecodingOptions) -> list[WindowDecoding]:
            results = search(self.onnx, memory.rows(list(rows)), options)
            return [WindowDecoding.from_result(result, self.header.tokenizer, no_speech[row], options.temperature)
                    for row, result in zip(rows, results, strict=True)]

        decodings = decode_with_fallback(range(len(waveforms)), decode_batch, decoding, policy)
        return [
            None if window is None else Segment(round(start, TIME_DIGITS), round(end, TIME_DIGITS), window.text, [])
            for window, (start, end) in zip(decodings, spans, strict=True)
        ]
