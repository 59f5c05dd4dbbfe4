"""Decoding a batch of speech windows: features, encoder, search, whisper's checks and fallback, CTC
rescoring of a beam, and word timestamps. ``Transcriber`` (``transcription``) adds the windows and the
streaming over recordings.

With a CTC head in the checkpoint and a beam, the search ranks the beam's hypotheses as in ESPnet's hybrid
decoding (``CTCHybridRanker``): ``(1 - w) * log P_attention + w * log P_ctc``, penalizing hypotheses the audio does not
support (dropped or repeated words). Each window is checked (``speech.fallback``): silence is dropped, a looping or
unsure decoding is re-decoded by sampling at rising temperatures. Word times come from CTC forced
alignment with the CTC head, or from the decoder's cross-attention by DTW (``speech.word_timing``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from multimodal_s2s.checkpoint import CTC_HEAD_PREFIX, Checkpoint
from multimodal_s2s.decoding import CTCHybridRanker, DecodingOptions, DecodingResult, decode_encoded
from multimodal_s2s.models.from_checkpoint import ctc_head_from_checkpoint
from multimodal_s2s.pipelines.text import TextOutPipeline
from multimodal_s2s.pipelines.transcription_options import TranscriptionOptions
from multimodal_s2s.pipelines.transcripts import Segment
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE, AudioFeatures
from multimodal_s2s.preprocessing.tokens import pad_last_axis
from multimodal_s2s.speech.fallback import WindowDecoding, decode_with_fallback, no_speech_probabilities
from multimodal_s2s.speech.word_timing import (
    TIME_DIGITS,
    AlignmentError,
    WindowTokens,
    Word,
    attention_word_timestamps,
    ctc_word_timestamps,
    seconds_per_row,
)
from multimodal_s2s.types import SequenceOutput

MIN_WINDOW_SECONDS = 0.1  # shorter windows are zero-padded (the conv frontend needs a few frames)
DECODE_LENGTH_MARGIN = 1.5  # decoding may emit this many times the training data's most tokens per second
MIN_DECODE_TOKENS = 16
DEFAULT_CTC_WEIGHT = 0.3


def select_rows(encoded: SequenceOutput, rows: Sequence[int]) -> SequenceOutput:
    """The windows ``rows`` of an encoder output (B, T, D) -> (len(rows), T, D)."""
    index = torch.as_tensor(list(rows), dtype=torch.long, device=encoded.memory.device)
    return SequenceOutput(memory=encoded.memory[index], mask=encoded.mask[index])


class WindowDecodingPipeline(TextOutPipeline):
    """A speech-recognition checkpoint that decodes batches of 16 kHz windows into timed segments."""

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "auto"):
        super().__init__(checkpoint, device)
        log_mel = self.header.preprocessing.log_mel
        self.features = AudioFeatures(self.model.encoder.info.n_mels, log_mel=log_mel).to(self.device).eval()
        head = ctc_head_from_checkpoint(checkpoint, self.model.encoder.info.out_dim)
        self.ctc_head = None if head is None else head.to(self.device)
        audio = self.header.preprocessing
        self.max_seconds = min(audio.max_seconds, MAX_WINDOW_SECONDS)
        self.merge_seconds = min(audio.median_seconds, self.max_seconds)

    def weights(self) -> dict[str, torch.Tensor]:
        """The model's weights and the CTC head's (``ctc_head.*``) when it has one."""
        head = {} if self.ctc_head is None else self.ctc_head.state_dict()
        return super().weights() | {f"{CTC_HEAD_PREFIX}{key}": value for key, value in head.items()}

    def window_options(self, beam_size: int | None = None, window_seconds: float | None = None) -> DecodingOptions:
        """Decoding options for windows of up to ``window_seconds`` (default: the longest window)."""
        seconds = window_seconds or self.max_seconds
        tokens_per_second = self.header.preprocessing.tokens_per_second
        max_length = max(math.ceil(tokens_per_second * seconds * DECODE_LENGTH_MARGIN), MIN_DECODE_TOKENS)
        return self.options(beam_size, max_length=max_length)

    def check_word_timestamps(self, options: TranscriptionOptions) -> None:
        """AlignmentError (one line) when word timestamps are asked of a model that cannot give them, or CTC
        alignment ("ctc") of a checkpoint without a CTC head."""
        if options.word_timestamps:
            seconds_per_row(self.model.encoder.info)
            if options.alignment == "ctc" and self.ctc_head is None:
                raise AlignmentError(
                    f"{self.path}: alignment 'ctc' needs a CTC head and this checkpoint has none "
                    "(alignment 'auto' or 'attention' times words by the decoder's cross-attention)"
                )

    @torch.no_grad()
    def encode(self, waveforms: Sequence[np.ndarray]) -> SequenceOutput:
        """16 kHz waveforms -> their encoder output (B, T, D); windows under 0.1 s are zero-padded."""
        min_samples = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
        tensors = [torch.from_numpy(np.pad(w, (0, max(min_samples - len(w), 0)))) for w in waveforms]
        inputs, lengths = pad_last_axis(tensors, 0.0)  # (B, S), (B,)
        features, frame_lengths = self.features(inputs.to(self.device), lengths.to(self.device))
        return self.model.encode(features, frame_lengths)

    @torch.no_grad()
    def decode_windows(
        self,
        waveforms: Sequence[np.ndarray],
        spans: Sequence[tuple[float, float]],
        options: TranscriptionOptions,
        decoding: DecodingOptions | None = None,
    ) -> list[Segment | None]:
        """Decode windows (16 kHz waveforms) in one batch under ``options``' checks and fallback: a segment
        per window, placed at its (start, end) seconds in ``spans``: None for a window dropped as silence, one
        with no text for a window whose every try failed the checks (``drop_failed``). ``decoding`` replaces
        the options made from the beam size and the windows' length."""
        encoded = self.encode(waveforms)
        decoding = decoding or self.window_options(options.beam_size, max(len(w) for w in waveforms) / SAMPLE_RATE)
        policy = options.fallback_policy()
        no_speech = [None] * len(waveforms)
        if policy.thresholds.no_speech is not None:
            no_speech = self.no_speech(encoded).tolist()
        weight = DEFAULT_CTC_WEIGHT if options.ctc_weight is None else options.ctc_weight

        def decode_batch(rows: Sequence[int], search: DecodingOptions) -> list[WindowDecoding]:
            results = self._search(self.rows(encoded, rows), search, weight)
            tokenizer = self.header.tokenizer
            return [
                WindowDecoding.from_result(result, tokenizer, no_speech[row], search.temperature)
                for row, result in zip(rows, results, strict=True)
            ]

        decodings = decode_with_fallback(range(len(waveforms)), decode_batch, decoding, policy)
        return self._segments(encoded, decodings, spans, options)

    def no_speech(self, encoded: SequenceOutput) -> Tensor:
        """(B,) each window's probability of an empty transcript (``speech.fallback.no_speech_probabilities``)."""
        return no_speech_probabilities(self.model, encoded)

    def rows(self, encoded: SequenceOutput, rows: Sequence[int]) -> SequenceOutput:
        """The windows ``rows`` of an encoder output."""
        return select_rows(encoded, rows)

    def _search(self, encoded: SequenceOutput, options: DecodingOptions, ctc_weight: float) -> list[DecodingResult]:
        """Greedy, sampling or beam search; a beam's answer ranked with the CTC head when there is one."""
        ranker = None if self.ctc_head is None or ctc_weight <= 0 else CTCHybridRanker(self.ctc_head, ctc_weight)
        return decode_encoded(self.model, encoded, options, ranker)

    def _segments(
        self,
        encoded: SequenceOutput,
        decodings: list[WindowDecoding | None],
        spans: Sequence[tuple[float, float]],
        options: TranscriptionOptions,
    ) -> list[Segment | None]:
        segments: list[Segment | None] = [None] * len(decodings)
        for row, decoding in enumerate(decodings):
            if decoding is not None:
                start, end = (round(seconds, TIME_DIGITS) for seconds in spans[row])
                segments[row] = Segment(start, end, decoding.text)
        timed = [row for row, decoding in enumerate(decodings) if decoding is not None and decoding.tokens]
        if options.word_timestamps and timed:
            windows = [WindowTokens(decodings[row].tokens, *spans[row]) for row in timed]
            for row, words in zip(timed, self.word_timestamps(self.rows(encoded, timed), windows, options.alignment),
                                  strict=True):
                segments[row].words = words
        return segments

    def word_timestamps(self, encoded: SequenceOutput, windows: list[WindowTokens], alignment: str) -> list[list[Word]]:
        """Words of each window of ``encoded``: CTC forced alignment where the checkpoint has a CTC head and the
        tokens fit ("auto", "ctc"; "ctc" is refused without a CTC head, ``check_word_timestamps``), cross-attention
        DTW otherwise ("attention": always)."""
        tokenizer = self.header.tokenizer
        row_seconds = seconds_per_row(self.model.encoder.info)
        words: dict[int, list[Word]] = {}
        if self.ctc_head is not None and alignment != "attention":
            log_probs = self.ctc_head(encoded)  # (B, T, V)
            for row, window in enumerate(windows):
                found = ctc_word_timestamps(log_probs[row][encoded.mask[row]], window, tokenizer, row_seconds)
                if found is not None:
                    words[row] = found
        missing = [row for row in range(len(windows)) if row not in words]
        if missing:
            by_attention = attention_word_timestamps(
                self.model, select_rows(encoded, missing), [windows[row] for row in missing], tokenizer, row_seconds
            )
            words.update(zip(missing, by_attention, strict=True))
        return [words[row] for row in range(len(windows))]
