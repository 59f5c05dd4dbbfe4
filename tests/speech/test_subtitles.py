"""Transcript writers: every format parses with a reader of its own (srt, webvtt-py, csv, json), cues carry
the segment or word times, cue text stays on one line, silent segments are left out of the subtitles."""

from __future__ import annotations

import csv
import io
import json

import pytest

from multimodal_s2s.pipelines.transcripts import Segment, Transcript
from multimodal_s2s.speech.subtitles import OUTPUT_FORMATS, format_timestamp, render
from multimodal_s2s.speech.word_timing import Word

srt = pytest.importorskip("srt", reason="the srt package (a test dependency) is not installed")
webvtt = pytest.importorskip("webvtt", reason="webvtt-py (a test dependency) is not installed")


def _transcript() -> Transcript:
    words = [Word("up", 0.5, 0.9, 0.9), Word("down", 1.0, 1.6, 0.8), Word("left", 1.7, 2.0, 0.7)]
    return Transcript(
        3725.25,
        [
            Segment(0.5, 2.0, "up down left", words),
            Segment(2.5, 3.0, ""),  # a window decoded as silence
            Segment(3661.5, 3662.25, "a --> b\nc", [Word("a", 3661.5, 3661.6, 0.5)]),
        ],
    )


def test_srt_parses_with_segment_times():
    subtitles = list(srt.parse(render(_transcript(), "srt"), ignore_errors=False))
    assert [s.content for s in subtitles] == ["up down left", "a -> b c"]
    assert [s.index for s in subtitles] == [1, 2]
    assert [s.start.total_seconds() for s in subtitles] == [0.5, 3661.5]
    assert [s.end.total_seconds() for s in subtitles] == [2.0, 3662.25]


def test_vtt_parses_with_segment_times():
    text = render(_transcript(), "vtt")
    assert text.startswith("WEBVTT\n\n")
    captions = list(webvtt.from_string(text))
    assert [c.text for c in captions] == ["up down left", "a -> b c"]
    assert [(c.start, c.end) for c in captions] == [("00:00:00.500", "00:00:02.000"), ("01:01:01.500", "01:01:02.250")]


def test_one_word_per_cue():
    subtitles = list(srt.parse(render(_transcript(), "srt", max_words_per_cue=1), ignore_errors=False))
    assert [s.content for s in subtitles] == ["up", "down", "left", "a"]
    assert [(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles][:2] == [(0.5, 0.9), (1.0, 1.6)]
    captions = list(webvtt.from_string(render(_transcript(), "vtt", max_words_per_cue=1)))
    assert [(c.start, c.text) for c in captions][:2] == [("00:00:00.500", "up"), ("00:00:01.000", "down")]
    assert len(captions) == 4
    two = list(srt.parse(render(_transcript(), "srt", max_words_per_cue=2), ignore_errors=False))
    assert [s.content for s in two] == ["up down", "left", "a"] and two[0].end.total_seconds() == 1.6


def test_tsv_and_txt():
    rows = list(csv.reader(io.StringIO(render(_transcript(), "tsv")), delimiter="\t"))
    assert rows == [["start", "end", "text"], ["500", "2000", "up down left"], ["3661500", "3662250", "a -> b c"]]
    assert render(_transcript(), "txt") == "up down left\na -> b c\n"


def test_json_carries_segments_and_words():
    record = json.loads(render(_transcript(), "json", audio_path="talk.wav"))
    assert record["audio"] == "talk.wav" and record["duration"] == 3725.25
    assert record["text"] == "up down left a --> b\nc"
    assert [s["id"] for s in record["segments"]] == [0, 1, 2] and record["segments"][1]["words"] == []
    assert record["segments"][0]["words"][1] == {"word": "down", "start": 1.0, "end": 1.6, "probability": 0.8}


def test_every_format_renders_an_empty_transcript():
    empty = Transcript(4.0, [])
    outputs = {kind: render(empty, kind) for kind in OUTPUT_FORMATS}
    assert outputs["txt"] == "" and outputs["srt"] == "" and outputs["vtt"] == "WEBVTT\n\n"
    assert list(webvtt.from_string(outputs["vtt"])) == [] and json.loads(outputs["json"])["segments"] == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown transcript format 'doc'"):
        render(_transcript(), "doc")
    with pytest.raises(ValueError, match="max_words_per_cue"):
        render(_transcript(), "srt", max_words_per_cue=0)


def test_timestamps():
    assert format_timestamp(3661.5, ",") == "01:01:01,500" and format_timestamp(0.0004, ".") == "00:00:00.000"
