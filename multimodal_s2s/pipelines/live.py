"""Live transcription: audio fed as it arrives, words out as soon as they settle (``Transcriber.live``).

    >>> live = transcriber.live(sample_rate=48000)
    >>> for piece in microphone:                      # numpy (S,) or (S, channels), int16 or float
    ...     update = live.feed(piece)
    ...     print(update.committed, update.tail)      # words settled by this piece; the words not yet settled
    >>> live.finish().committed                        # the rest, at the end of the stream
    >>> live.transcript()                              # a Transcript, as ``Transcriber`` gives (txt/srt/json)

The audio is resampled to 16 kHz as it comes (``speech.stream_audio``) and kept in a buffer. Each time a
chunk of audio (``LiveOptions.chunk_seconds``, 1 s) has come in, a pass finds the speech in the buffer
(Silero VAD, or the energy splitter: ``TranscriptionOptions.windows``) and decodes, in one batch
(``window_decoding``, with whisper's checks and word timestamps), every utterance the VAD has closed (followed
by ``close_silence_seconds`` of silence after its padding): all their words are committed, and their audio
dropped; and the utterance still open, whose words are committed where two consecutive passes agree on them
(LocalAgreement-2, ``speech.agreement``), the rest being the tail shown until then. Silence is not decoded: a
buffer without speech keeps only its last second. The buffer's bound is ``buffer_seconds`` (30 s) and the
longest audio the checkpoint was trained on (``longest_input_seconds``: its longest utterance with the silence
training put around it); an utterance that would grow past it less a quarter chunk closes at a pause
between the VAD's regions (or at its end, when the buffer fills before its closing silence is heard), and one
region that long is cut at the end of its last committed word (else its tail is
committed up to a chunk before its end, else its oldest audio is dropped), so the buffer never holds more
than the bound (a pass comes early when it is full). ``finish`` closes everything and commits every word left.

Committed words never change; the transcript is the committed words in order, one segment per utterance.
The lag (compute time over the audio time of the last passes) is watched: above ``max_lag`` (1: falling
behind) the transcriber says so once (``LiveUpdate.warning``) and goes on greedy, without fallback, every
two chunks.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from multimodal_s2s.pipelines.transcription_options import LiveOptions, TranscriptionOptions
from multimodal_s2s.pipelines.transcripts import Segment, Transcript
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE
from multimodal_s2s.speech.agreement import agreed_prefix, new_words
from multimodal_s2s.speech.stream_audio import AudioStreamError, StreamResampler
from multimodal_s2s.speech.windows import SampleRange
from multimodal_s2s.speech.word_timing import TIME_DIGITS, Word

if TYPE_CHECKING:
    from multimodal_s2s.pipelines.transcription import Transcriber

#: Audio kept while nobody speaks (s): the VAD's context, and the onset of speech that starts at a chunk's end.
PREROLL_SECONDS = 1.0
LAG_PASSES = 3  # the lag is measured over this many passes
SLOW_CHUNK_FACTOR = 2  # behind: a pass every this many chunks


@dataclass
class LiveUpdate:
    """What a piece of audio changed: the words it committed (in order, never changed later), the words not
    committed yet (replacing the previous tail), and, once, the warning that the transcriber fell behind."""

    committed: list[Word] = field(default_factory=list)
    tail: list[Word] = field(default_factory=list)
    warning: str | None = None

    @property
    def committed_text(self) -> str:
        return " ".join(word.word for word in self.committed)

    @property
    def tail_text(self) -> str:
        return " ".join(word.word for word in self.tail)


def longest_input_seconds(transcriber: Transcriber) -> float:
    """The longest audio the checkpoint was trained on (<= 30 s): its longest utterance and the silence that
    training put before and after it (``AudioPreprocessing.silence_pad_seconds``)."""
    audio = transcriber.header.preprocessing
    return min(transcriber.max_seconds + 2 * audio.silence_pad_seconds, MAX_WINDOW_SECONDS)


class StreamingTranscriber:
    """A ``Transcriber`` run on one stream of audio as it arrives; see the module docstring."""

    def __init__(
        self,
        transcriber: Transcriber,
        sample_rate: int = SAMPLE_RATE,
        options: TranscriptionOptions | None = None,
        live: LiveOptions | None = None,
    ):
        self.transcriber = transcriber
        self.resampler = StreamResampler(sample_rate)
        self.options = transcriber.resolve_options(options, word_timestamps=True)
        self.find_speech = transcriber.speech_finder(self.options)
        self.live = live or LiveOptions()
        self.bound = round(min(self.live.buffer_seconds, longest_input_seconds(transcriber)) * SAMPLE_RATE)
        self.chunk = round(self.live.chunk_seconds * SAMPLE_RATE)
        if 2 * self.chunk > self.bound:
            raise ValueError(
                f"chunk_seconds ({self.live.chunk_seconds:g}) must be at most half the buffer's bound "
                f"({self.bound / SAMPLE_RATE:g} s: buffer_seconds and the longest audio the checkpoint was trained on)"
            )
        self.words: list[Word] = []  # committed, in order
        self.max_buffer = self.received = 0  # samples at 16 kHz
        self.compute_seconds = 0.0
        self.behind = self.finished = False
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = self._pending = 0  # stream samples before the buffer; samples since the last pass
        self._segments: list[list[Word]] = [[]]  # committed words by utterance; the last one is open
        self._tail: list[Word] = []
        self._passes: deque[tuple[float, float]] = deque(maxlen=LAG_PASSES)  # (compute s, audio s)

    @property
    def lag(self) -> float:
        """Compute time over audio time, over the whole stream so far."""
        return self.compute_seconds / self.received * SAMPLE_RATE if self.received else 0.0

    @property
    def tail(self) -> list[Word]:
        return list(self._tail)

    def feed(self, piece: np.ndarray) -> LiveUpdate:
        """Take the next ``piece`` of audio (S,) or (S, C) at the stream's rate; decode when a chunk is in.
        Raises AudioStreamError (one line) for a piece that is not audio, or after ``finish``."""
        if self.finished:
            raise AudioStreamError("the stream has ended: no audio can be fed after finish()")
        return self._take(self.resampler(piece), final=False)

    def finish(self) -> LiveUpdate:
        """End the stream: decode what is left and commit every word (the tail becomes empty)."""
        if self.finished:
            return LiveUpdate()
        self.finished = True
        return self._take(self.resampler.flush(), final=True)

    def transcript(self, source: str = "") -> Transcript:
        """The committed words as a Transcript: one segment per utterance."""
        segments = [
            Segment(words[0].start, words[-1].end, " ".join(w.word for w in words), list(words))
            for words in self._segments
            if words
        ]
        return Transcript(round(self.received / SAMPLE_RATE, TIME_DIGITS), segments, source)

    def _take(self, samples: np.ndarray, final: bool) -> LiveUpdate:
        """Append ``samples`` (16 kHz), a pass whenever a chunk is in or the buffer is full (and at the end)."""
        update = LiveUpdate(tail=self._tail)
        self.received += len(samples)
        while len(samples) or final:
            room = self.bound - len(self._buffer)
            self._buffer = np.concatenate([self._buffer, samples[:room]])
            self._pending += min(room, len(samples))
            samples = samples[room:]
            self.max_buffer = max(self.max_buffer, len(self._buffer))
            last = final and not len(samples)
            if last or self._pending >= self.chunk or len(self._buffer) >= self.bound:
                audio, started = self._pending, time.perf_counter()
                update.committed += self._pass(last)
                update.warning = self._watch(time.perf_counter() - started, audio) or update.warning
            if last:
                break
        update.tail = list(self._tail)
        return update

    def _pass(self, final: bool) -> list[Word]:
        """Decode the buffer's closed utterances and its open one (see the module docstring): the words committed."""
        utterances = self._utterances(self.find_speech(self._buffer))
        closed = utterances if final else [u for u in utterances if u[2]]
        is_open = len(closed) < len(utterances)
        pieces = [(start, end) for start, end, _ in closed] + ([utterances[-1][:2]] if is_open else [])
        decoded = self._decode(pieces)
        committed: list[Word] = []
        for words in decoded[: len(closed)]:
            committed += self._commit(new_words(words, self._segments[-1], self.words))
            self._close_segment()
        if is_open:
            words = new_words(decoded[-1], self._segments[-1], self.words)
            agreed = agreed_prefix(self._tail, words)
            committed += self._commit(agreed)
            self._tail = words[len(agreed) :]
            self._cut(pieces[-1][0])
            committed += self._bound_open_utterance()
        else:
            self._tail = []
            self._close_segment()
            preroll = min(round(PREROLL_SECONDS * SAMPLE_RATE), self._open_limit())
            self._cut(max(pieces[-1][1] if pieces else 0, len(self._buffer) - preroll))
        self._pending = 0
        return committed

    def _utterances(self, regions: list[SampleRange]) -> list[tuple[int, int, bool]]:
        """Speech regions joined across pauses shorter than ``close_silence_seconds`` while the joined span
        fits the open utterance's limit: (start, end, closed). All but the last are closed (speech follows
        them); the last once ``close_silence_seconds`` of silence follow it, or any when the buffer is full."""
        gap, limit = round(self.live.close_silence_seconds * SAMPLE_RATE), self._open_limit()
        joined: list[list[int]] = []
        for start, end in regions:
            if joined and start - joined[-1][1] < gap and end - joined[-1][0] <= limit:
                joined[-1][1] = end
            else:
                joined.append([start, end])
        size = len(self._buffer)
        full = size >= self.bound  # the silence after the last one is heard as far as it can be
        heard_after = [size - end >= max(gap, 1) or (full and end < size) for _, end in joined]
        return [(start, end, n < len(joined) - 1 or heard_after[n]) for n, (start, end) in enumerate(joined)]

    def _open_limit(self) -> int:
        """The most samples the open utterance keeps after a pass: room for a quarter chunk below the bound."""
        return self.bound - max(self.chunk // 4, 1)

    def _decode(self, pieces: list[SampleRange]) -> list[list[Word]]:
        """The words of each piece of the buffer, decoded in one batch (a window dropped by the checks: none)."""
        if not pieces:
            return []
        waveforms = [self._buffer[start:end] for start, end in pieces]
        spans = [((self._offset + start) / SAMPLE_RATE, (self._offset + end) / SAMPLE_RATE) for start, end in pieces]
        segments = self.transcriber.decode_windows(waveforms, spans, self.options)
        return [segment.words if segment else [] for segment in segments]

    def _commit(self, words: list[Word]) -> list[Word]:
        self.words += words
        self._segments[-1] += words
        return words

    def _close_segment(self) -> None:
        if self._segments[-1]:
            self._segments.append([])

    def _cut(self, start: int) -> None:
        """Drop the buffer's first ``start`` samples."""
        start = min(max(start, 0), len(self._buffer))
        self._buffer = self._buffer[start:]
        self._offset += start

    def _bound_open_utterance(self) -> list[Word]:
        """Keep the open utterance (the buffer) within ``_open_limit``: cut it at its last committed word's end,
        else commit its tail up to a chunk before its end and cut there, else drop its oldest audio."""
        limit = self._open_limit()
        if len(self._buffer) <= limit:
            return []
        committed = []
        if not self._segments[-1]:
            before = (self._offset + len(self._buffer) - self.chunk) / SAMPLE_RATE
            committed = self._commit([w for w in self._tail if w.end <= before])
            self._tail = self._tail[len(committed) :]
        if self._segments[-1]:
            self._cut(round(self._segments[-1][-1].end * SAMPLE_RATE) - self._offset)
            self._close_segment()
        self._cut(len(self._buffer) - limit)
        floor = self._offset / SAMPLE_RATE
        self._tail = [w for w in self._tail if w.start >= floor]
        return committed

    def _watch(self, elapsed: float, audio: int) -> str | None:
        """Count a pass's compute time (over ``audio`` new samples); once the last passes' lag is above
        ``max_lag``, go cheaper and say so."""
        self.compute_seconds += elapsed
        self._passes.append((elapsed, max(audio, self.chunk) / SAMPLE_RATE))
        lag = sum(c for c, _ in self._passes) / sum(a for _, a in self._passes)
        if self.behind or len(self._passes) < LAG_PASSES or lag <= self.live.max_lag:
            return None
        self.behind = True
        self.options = replace(self.options, beam_size=1, temperature=(0.0,))
        self.chunk = min(self.chunk * SLOW_CHUNK_FACTOR, self.bound // 2)
        return (
            f"live transcription is falling behind (compute {lag:.2f}x the audio's time over the last "
            f"{LAG_PASSES} passes): now greedy, without fallback, a pass every {self.chunk / SAMPLE_RATE:g} s"
        )
