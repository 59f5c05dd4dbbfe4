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
from multimodal_s2s.onnx_runtime.model import EncodedMemory, OnnxTextModel
from multimodal_s2s.onnx_runtime.search import SearchResult, no_speech_probabilities, search
from multimodal_s2s.pipelines.transcription import Transcriber
from multimodal_s2s.pipelines.transcription_options import TranscriptionOptions
from multimodal_s2s.pipelines.window_decoding import MIN_WINDOW_SECONDS
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE
from multimodal_s2s.speech.word_timing import AlignmentError


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

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncodedMemory:
        """16 kHz waveforms -> the export's encoder output (numpy log-mel with its filterbank)."""
        min_samples = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
        features, lengths = log_mel([np.pad(w, (0, max(min_samples - len(w), 0))) for w in waveforms], self.filters)
        return self.onnx.encode(features, lengths)

    def no_speech(self, encoded: EncodedMemory) -> np.ndarray:
        return no_speech_probabilities(self.onnx, encoded)

    def rows(self, encoded: EncodedMemory, rows: Sequence[int]) -> EncodedMemory:
        return encoded.rows(list(rows))

    def _search(self, encoded: EncodedMemory, options: DecodingOptions, ctc_weight: float) -> list[SearchResult]:
        """Greedy, sampling or beam search on onnxruntime (no CTC head: the ranking is the length penalty's)."""
        return search(self.onnx, encoded, options)
