"""A transcript as the files whisper users know: txt, vtt, srt, tsv and json (``render``; strings, the
caller writes them).

- txt: one line per spoken segment.
- vtt (WebVTT) and srt (SubRip): one cue per spoken segment, or, with ``max_words_per_cue`` and word
  timestamps, cues of at most that many words (1: one word per cue). Cue text is one line: line breaks
  and the ``-->`` marker cannot end up in it.
- tsv: ``start``, ``end`` (integer milliseconds) and ``text`` per spoken segment, under a header line.
- json: ``audio``, ``duration``, ``text`` and ``segments`` (``id``, ``start``, ``end``, ``text``, ``words``
  with ``word``, ``start``, ``end``, ``probability``); times in seconds.

Segments with empty text (windows without speech) appear in json only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

OUTPUT_FORMATS = ("txt", "vtt", "srt", "tsv", "json")
MIN_CUE_SECONDS = 0.001  # a cue must end after it starts


class TimedWord(Protocol):
    word: str
    start: float
    end: float
    probability: float


class TimedSegment(Protocol):
    start: float
    end: float
    text: str
    words: Sequence[TimedWord]


class TimedTranscript(Protocol):
    duration: float
    segments: Sequence[TimedSegment]

    @property
    def text(self) -> str: ...


def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """Seconds -> ``HH:MM:SS<marker>mmm`` (SubRip: ",", WebVTT: ".")."""
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def cue_text(text: str) -> str:
    """One line of cue text: white space collapsed, no ``-->`` (which would read as a timing line)."""
    return " ".join(text.split()).replace("-->", "->")


def cues(segments: Sequence[TimedSegment], max_words_per_cue: int | None = None) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue: spoken segments, or runs of at most ``max_words_per_cue`` of their words
    (a segment without words stays one cue)."""
    if max_words_per_cue is not None and max_words_per_cue < 1:
        raise ValueError(f"max_words_per_cue must be >= 1, got {max_words_per_cue}")
    result = []
    for segment in segments:
        if not cue_text(segment.text):
            continue
        words = list(segment.words)
        if max_words_per_cue is None or not words:
            result.append((segment.start, segment.end, cue_text(segment.text)))
            continue
        for first in range(0, len(words), max_words_per_cue):
            group = words[first : first + max_words_per_cue]
            result.append((group[0].start, group[-1].end, cue_text(" ".join(word.word for word in group))))
    return [(start, max(end, start + MIN_CUE_SECONDS), text) for start, end, text in result]


def write_txt(transcript: TimedTranscript) -> str:
    return "".join(f"{cue_text(segment.text)}\n" for segment in transcript.segments if cue_text(segment.text))


def write_srt(transcript: TimedTranscript, max_words_per_cue: int | None = None) -> str:
    return "".join(
        f"{number}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n\n"
        for number, (start, end, text) in enumerate(cues(transcript.segments, max_words_per_cue), start=1)
    )


def write_vtt(transcript: TimedTranscript, max_words_per_cue: int | None = None) -> str:
    body = "".join(
        f"{format_timestamp(start, '.')} --> {format_timestamp(end, '.')}\n{text}\n\n"
        for start, end, text in cues(transcript.segments, max_words_per_cue)
    )
    return f"WEBVTT\n\n{body}"


def write_tsv(transcript: TimedTranscript) -> str:
    rows = [
        f"{round(segment.start * 1000)}\t{round(segment.end * 1000)}\t{cue_text(segment.text)}\n"
        for segment in transcript.segments
        if cue_text(segment.text)
    ]
    return "start\tend\ttext\n" + "".join(rows)


def write_json(transcript: TimedTranscript, audio_path: str = "") -> str:
    segments = [
        {
            "id": index,
            "start": segment.start,
            "end": segment.end,
            "text": segment.text,
            "words": [
                {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability} for w in segment.words
            ],
        }
        for index, segment in enumerate(transcript.segments)
    ]
    record = {"audio": audio_path, "duration": transcript.duration, "text": transcript.text, "segments": segments}
    return json.dumps(record, ensure_ascii=False) + "\n"


def render(transcript: TimedTranscript, kind: str, audio_path: str = "", max_words_per_cue: int | None = None) -> str:
    """The transcript in format ``kind`` (one of OUTPUT_FORMATS); see the module docstring."""
    if kind == "txt":
        return write_txt(transcript)
    if kind == "srt":
        return write_srt(transcript, max_words_per_cue)
    if kind == "vtt":
        return write_vtt(transcript, max_words_per_cue)
    if kind == "tsv":
        return write_tsv(transcript)
    if kind == "json":
        return write_json(transcript, audio_path)
    raise ValueError(f"unknown transcript format {kind!r}; choose from {', '.join(OUTPUT_FORMATS)}")
