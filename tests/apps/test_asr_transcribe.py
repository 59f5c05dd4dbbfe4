"""``mms2s transcribe`` on tone recordings through the energy splitter: long recordings cut into windows
with monotonic timestamps, valid srt/json, bad files skipped with a one-line message, inputs never
overwritten, non-ASR checkpoints refused (speech, the VAD and the output formats:
``test_longform_transcription``)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile
from app_fixtures import COUNT_MIXES, good_ones
from asr_fixtures import TONE_TRANSCRIBE_FLAGS, tiny_asr_run, tone_utterance
from checkpoint_helpers import text_header, write_checkpoint

from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import Task, read_checkpoint
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_SECONDS, SAMPLE_RATE
from multimodal_s2s.speech.energy import speech_windows

LONG_FILE_SECONDS = 180
SRT_CUE = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    trainer, _, _ = tiny_asr_run(tmp_path_factory.mktemp("tones"), steps=5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    """Three minutes of tone clips (1 to 3 words) separated by pauses of 0.2 to 1 s."""
    rng = np.random.default_rng(0)
    words, parts, total = ["up", "down", "left", "right"], [], 0
    while total < LONG_FILE_SECONDS * SAMPLE_RATE:
        clip = tone_utterance(list(rng.choice(words, size=rng.integers(1, 4))))
        pause = np.zeros(int(rng.uniform(0.2, 1.0) * SAMPLE_RATE), dtype=np.float32)
        parts += [clip, pause]
        total += len(clip) + len(pause)
    path = tmp_path_factory.mktemp("long") / "long.flac"
    soundfile.write(path, np.concatenate(parts)[: LONG_FILE_SECONDS * SAMPLE_RATE], SAMPLE_RATE)
    return path


def _bursts(seconds_on_off: list[tuple[float, float]]) -> np.ndarray:
    time = np.arange(int(0.05 * SAMPLE_RATE)) / SAMPLE_RATE
    parts = []
    for on, off in seconds_on_off:
        tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(on * SAMPLE_RATE)) / SAMPLE_RATE)
        parts += [tone, np.zeros(int(off * SAMPLE_RATE))]
    return np.concatenate([np.zeros_like(time), *parts]).astype(np.float32)


def test_windows_follow_pauses_and_limits():
    waveform = _bursts([(2.0, 1.0), (3.0, 0.1), (1.0, 1.0), (4.0, 0.5)])  # the 0.1 s pause is not a break
    windows = speech_windows(waveform, max_seconds=30, merge_seconds=1)
    starts = [start / SAMPLE_RATE for start, _ in windows]
    assert len(windows) == 3 and starts[1] == pytest.approx(3.05 - 0.1, abs=0.02)  # padded by 0.1 s
    assert all(end1 <= start2 for (_, end1), (start2, _) in zip(windows, windows[1:], strict=False))
    merged = speech_windows(waveform, max_seconds=30, merge_seconds=30)
    assert len(merged) == 1 and merged[0][1] - merged[0][0] <= 30 * SAMPLE_RATE


def test_long_speech_without_pauses_is_cut_below_the_limit():
    time = np.arange(70 * SAMPLE_RATE) / SAMPLE_RATE
    waveform = (0.3 * np.sin(2 * np.pi * 300 * time) * (1.2 + np.sin(2 * np.pi * 0.7 * time))).astype(np.float32)
    windows = speech_windows(waveform, max_seconds=MAX_WINDOW_SECONDS)
    assert len(windows) == 3 and windows[0][0] == 0 and windows[-1][1] == len(waveform)
    assert all(0 < end - start <= MAX_WINDOW_SECONDS * SAMPLE_RATE for start, end in windows)
    assert all(end == next_start for (_, end), (next_start, _) in zip(windows, windows[1:], strict=False))


def test_silence_has_no_windows():
    assert speech_windows(np.zeros(SAMPLE_RATE * 5, dtype=np.float32), max_seconds=30) == []


def test_three_minute_file_in_windows_with_monotonic_timestamps(checkpoint, long_recording, tmp_path, capsys):
    assert main(["transcribe", str(long_recording), "--checkpoint", str(checkpoint), "--format", "json",
                 "--output-dir", str(tmp_path), "--batch-size", "16", *TONE_TRANSCRIBE_FLAGS]) == 0
    record = json.loads((tmp_path / "long.json").read_text())
    segments = record["segments"]
    limit = min(MAX_WINDOW_SECONDS, read_checkpoint(checkpoint).header.preprocessing.max_seconds)
    assert record["duration"] == pytest.approx(LONG_FILE_SECONDS) and len(segments) > 100
    assert all(0 < s["end"] - s["start"] <= limit + 1e-3 for s in segments)
    assert all(a["end"] <= b["start"] for a, b in zip(segments, segments[1:], strict=False))
    assert segments[-1]["end"] <= LONG_FILE_SECONDS
    captured = capsys.readouterr()
    assert "real-time factor" in captured.err and captured.out.startswith(f"{long_recording}\t")


def test_srt_output_is_valid(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output folder is the current one
    audio = tmp_path / "clip.wav"
    clips = [tone_utterance(["up", "left"]), np.zeros(SAMPLE_RATE, dtype=np.float32), tone_utterance(["down"])]
    soundfile.write(audio, np.concatenate(clips), SAMPLE_RATE)
    assert main(["transcribe", str(audio), "--checkpoint", str(checkpoint), "--format", "srt", "--beam-size", "2",
                 *TONE_TRANSCRIBE_FLAGS]) == 0
    srt = (tmp_path / "clip.srt").read_text()
    cues = SRT_CUE.findall(srt)
    assert srt == "".join(f"{n}\n{a} --> {b}\n{text}\n\n" for n, a, b, text in cues)  # nothing else in the file
    assert [int(n) for n, *_ in cues] == list(range(1, len(cues) + 1))
    assert all(a < b for _, a, b, _ in cues)


def test_bad_files_are_skipped_with_one_line_each(checkpoint, tmp_path, capsys):
    good, empty, garbage = tmp_path / "good.wav", tmp_path / "empty.wav", tmp_path / "garbage.mp3"
    soundfile.write(good, tone_utterance(["up"]), SAMPLE_RATE)
    soundfile.write(empty, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    garbage.write_text("not audio")
    code = main(["transcribe", str(empty), str(garbage), str(good), str(tmp_path / "missing.wav"), "--checkpoint",
                 str(checkpoint), "--output-dir", str(tmp_path / "out"), *TONE_TRANSCRIBE_FLAGS])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 3
    assert all(name in line for name, line in zip(["missing.wav", "empty.wav", "garbage.mp3"], errors, strict=True))
    assert (tmp_path / "out" / "good.txt").is_file() and garbage.read_text() == "not audio"


def test_outputs_never_overwrite_inputs_nor_existing_files(checkpoint, tmp_path, capsys):
    audio, clash = tmp_path / "a.wav", tmp_path / "a.txt"
    soundfile.write(audio, tone_utterance(["up"]), SAMPLE_RATE)
    clash.write_text("keep me")  # an input named like a.wav's output
    args = ["transcribe", str(audio), "--checkpoint", str(checkpoint), "--output-dir", str(tmp_path),
            *TONE_TRANSCRIBE_FLAGS]
    assert main([*args[:2], str(clash), *args[2:]]) == 1
    assert clash.read_text() == "keep me" and "is an input of this run" in capsys.readouterr().err
    assert main(args) == 1  # a.txt exists: kept unless --overwrite
    assert clash.read_text() == "keep me" and "a.txt exists (use --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert clash.read_text() != "keep me" and f"overwriting {clash}" in capsys.readouterr().err
    assert list(tmp_path.glob(".*partial")) == []


def test_other_task_checkpoint_is_refused(tmp_path, capsys):
    other = write_checkpoint(tmp_path / "caption.ckpt", text_header(Task.CAPTIONING))
    audio = tmp_path / "a.wav"
    soundfile.write(audio, tone_utterance(["up"]), SAMPLE_RATE)
    assert main(["transcribe", str(audio), "--checkpoint", str(other)]) == 2
    error = capsys.readouterr().err.strip()
    assert "caption.ckpt: the checkpoint's task is captioning, but this needs asr" in error and "\n" not in error


@pytest.mark.parametrize(("inputs", "failed", "done"), COUNT_MIXES)
def test_closing_line_counts_what_failed_and_what_was_transcribed(checkpoint, tmp_path, capsys, inputs, failed, done):
    files = {name: tmp_path / f"{name}.wav" for name in ("good", "good2", "unreadable", "missing")}
    soundfile.write(files["good"], tone_utterance(["up"]), SAMPLE_RATE)
    soundfile.write(files["good2"], tone_utterance(["down"]), SAMPLE_RATE)
    files["unreadable"].write_text("not audio")
    out = tmp_path / "out"
    options = ["--checkpoint", str(checkpoint), "--output-dir", str(out), *TONE_TRANSCRIBE_FLAGS]
    code = main(["transcribe", *(str(files[name]) for name in inputs), *options])
    closing = capsys.readouterr().err.splitlines()[-1]
    assert code == 1 and closing.startswith(f"transcribed {done} file(s), ") and f"; {failed} failed" in closing
    assert sorted(p.name for p in out.glob("*.txt")) == sorted(f"{n}.txt" for n in good_ones(inputs))
