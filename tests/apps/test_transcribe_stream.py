"""``mms2s transcribe --stream``: a file (as fast as it is taken, or paced with --realtime) and raw PCM on
standard input transcribed live, committed lines on stdout and every output format at the end; what is not
16-bit audio, an impossible rate, an empty stream and a missing microphone are one line each; SIGINT ends
the stream with what was heard written."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from asr_fixtures import join_with_pauses, random_speech_checkpoint, spoken_sentences

from multimodal_s2s.apps.cli import main
from multimodal_s2s.data import espeak
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE

pytestmark = pytest.mark.skipif(not espeak.espeak_available(), reason="espeak-ng is not installed")
#: Random weights fail every check: each window's first decoding is kept.
NO_CHECKS = [
    *("--temperature-increment-on-fallback", "none", "--compression-ratio-threshold", "none"),
    *("--logprob-threshold", "none", "--no-speech-threshold", "none", "--max-ngram-repeats", "none"),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_speech_checkpoint(tmp_path_factory.mktemp("ckpt") / "speech.ckpt")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Three sentences between pauses, as a FLAC file and as 16 kHz samples."""
    waveform, _ = join_with_pauses(spoken_sentences(), [1.0, 1.2, 0.8, 1.0])
    path = tmp_path_factory.mktemp("audio") / "talk.flac"
    soundfile.write(path, waveform, SAMPLE_RATE)
    return path, waveform


def pcm(waveform: np.ndarray) -> bytes:
    return (waveform * 32767).astype("<i2").tobytes()


def stream(checkpoint, source: str, out: Path, *extra: str) -> int:
    return main(["transcribe", "--stream", source, "--checkpoint", str(checkpoint), "--output-dir", str(out),
                 *NO_CHECKS, *extra])


def test_a_file_streams_committed_lines_and_writes_every_format(checkpoint, speech, tmp_path, capsys):
    path, _ = speech
    assert stream(checkpoint, str(path), tmp_path, "--format", "all") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3 and all(line.startswith("[") and " -> " in line for line in lines)
    result = json.loads((tmp_path / "talk.json").read_text())
    assert len(result["segments"]) == 3 and all(segment["words"] for segment in result["segments"])
    committed = " ".join(line.split("] ", 1)[1] for line in lines)
    assert (tmp_path / "talk.txt").read_text().split() == committed.split()
    assert {p.suffix for p in tmp_path.iterdir()} == {".txt", ".vtt", ".srt", ".tsv", ".json"}
    assert "streamed 9.8 s of audio" in captured.err and "3 word(s) written" in captured.err


def test_raw_pcm_on_standard_input_is_the_same_stream(checkpoint, speech, tmp_path, capsys, monkeypatch):
    path, waveform = speech
    stream(checkpoint, str(path), tmp_path / "file")
    from_file = (tmp_path / "file" / "talk.txt").read_text()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm(waveform))))
    assert stream(checkpoint, "-", tmp_path) == 0
    assert (tmp_path / "stdin.txt").read_text() == from_file != ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.random.default_rng(0).bytes(64000), "error: standard input is not 16-bit PCM audio"),
        (b"some notes piped by mistake\n" * 2000, "error: standard input is not 16-bit PCM audio"),
        (b"RIFF" + bytes(40000), "error: standard input holds a WAV file, not raw 16-bit PCM"),
    ],
    ids=["random-bytes", "text", "wav"],
)
def test_what_is_not_pcm_on_standard_input_is_one_line(checkpoint, tmp_path, capsys, monkeypatch, data, message):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert stream(checkpoint, "-", tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.splitlines()) == 1 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("rate", ["0", "-8000", "1000000"])
def test_an_impossible_rate_is_one_line(checkpoint, tmp_path, capsys, rate):
    assert stream(checkpoint, "-", tmp_path, "--rate", rate) == 2
    err = capsys.readouterr().err
    assert err == f"error: sample rate must be from 1000 to 384000 Hz, got {rate}\n"


def test_an_empty_stream_writes_an_empty_transcript(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert stream(checkpoint, "-", tmp_path, "--format", "json") == 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "streamed 0.0 s of audio" in err and "no speech found" in err
    assert json.loads((tmp_path / "stdin.json").read_text())["segments"] == []


def test_the_microphone_without_sounddevice_is_one_line_saying_how(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as when it is not installed
    assert main(["transcribe", "--stream", "--checkpoint", str(checkpoint), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "pip install sounddevice" in err and "--stream -" in err


def test_files_and_stream_are_one_or_the_other(checkpoint, speech, tmp_path, capsys):
    path, _ = speech
    assert main(["transcribe", str(path), "--stream", "-", "--checkpoint", str(checkpoint)]) == 2
    assert main(["transcribe", "--checkpoint", str(checkpoint)]) == 2
    assert capsys.readouterr().err.count("one or the other") == 2


def test_an_onnx_export_is_refused_in_one_line(checkpoint, speech, tmp_path, capsys):
    folder = tmp_path / "export"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(folder)]) == 0
    capsys.readouterr()
    assert stream(folder, str(speech[0]), tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(folder) in err and "ONNX export" in err
    assert not (tmp_path / "out").exists()


def test_realtime_paces_a_file_as_it_plays(checkpoint, tmp_path):
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32), SAMPLE_RATE)
    started = time.perf_counter()
    assert stream(checkpoint, str(short), tmp_path, "--realtime") == 0
    assert time.perf_counter() - started >= 1.4


def test_sigint_ends_the_stream_with_what_was_heard_written(checkpoint, speech, tmp_path):
    """A pipe that stays open after the first sentence: SIGINT while the command waits for more audio."""
    _, waveform = speech
    command = [sys.executable, "-m", "multimodal_s2s.apps.cli", "transcribe", "--stream", "-", "--checkpoint",
               str(checkpoint), "--output-dir", str(tmp_path), "--format", "json", *NO_CHECKS]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdin.write(pcm(waveform[: int(3.8 * SAMPLE_RATE)]))  # the first sentence and its pause
    process.stdin.flush()
    first_line = process.stdout.readline().decode()  # committed once the pause closes the sentence
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    assert first_line.startswith("[") and "Traceback" not in err.decode() and "(interrupted)" in err.decode()
    result = json.loads((tmp_path / "stdin.json").read_text())
    assert len(result["segments"]) == 1 and result["text"] == first_line.split("] ", 1)[1].strip()
