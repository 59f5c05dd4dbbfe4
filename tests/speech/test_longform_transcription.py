"""Long recordings through ``Transcriber`` and ``mms2s transcribe``: VAD windows around espeak-ng speech
between silences under a noise floor, windows batched across files and nothing decoded where nobody speaks,
word timestamps in order and inside their segments (CTC and attention), improbable windows dropped, silence
and noise alone giving an empty transcript that the CLI reports as such, and every output format parsing."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile
import torch
from asr_fixtures import TONE_TRANSCRIBE_FLAGS, join_with_pauses, noise, random_speech_checkpoint, spoken_sentences

import multimodal_s2s as mms
from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import CHECKPOINT_KEY
from multimodal_s2s.data import espeak
from multimodal_s2s.pipelines import transcription
from multimodal_s2s.pipelines.transcription_options import PLAIN_DECODING, READ_AHEAD_SECONDS
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.speech.vad import VADOptions

pytestmark = pytest.mark.skipif(not espeak.espeak_available(), reason="espeak-ng is not installed")
srt = pytest.importorskip("srt", reason="the srt package (a test dependency) is not installed")
webvtt = pytest.importorskip("webvtt", reason="webvtt-py (a test dependency) is not installed")

PAUSES = [1.0, 1.2, 0.8, 1.0]
#: Random weights fail every check: these options keep each window's first decoding.
NO_CHECKS = replace(PLAIN_DECODING, windows="vad")
NO_CHECKS_FLAGS = TONE_TRANSCRIBE_FLAGS[2:]  # all but "--windows energy"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Random weights with a CTC head; windows of up to 8 s, joined up to 3 s (a sentence each)."""
    return random_speech_checkpoint(tmp_path_factory.mktemp("ckpt") / "speech.ckpt")


@pytest.fixture(scope="module")
def transcriber(checkpoint):
    return mms.Transcriber.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def speech():
    """Three sentences between pauses under a -40 dBFS noise floor, and each sentence's speech (s)."""
    waveform, spoken = join_with_pauses(spoken_sentences(), PAUSES)
    return waveform + noise(len(waveform) / SAMPLE_RATE, -40.0), spoken


def test_vad_windows_hold_each_sentence_and_nothing_else_is_decoded(transcriber, speech):
    waveform, spoken = speech
    counts = []
    [transcript] = list(transcriber.stream([waveform], options=NO_CHECKS, progress=lambda *c: counts.append(c)))
    windows = transcriber.windows(waveform)
    assert len(windows) == len(spoken) and counts[-1] == (3, 3)  # found, decoded: the pauses are not decoded
    for (start, end), (onset, offset), segment in zip(windows, spoken, transcript.transcript.segments, strict=True):
        assert start / SAMPLE_RATE <= onset < start / SAMPLE_RATE + 0.3 and end / SAMPLE_RATE >= offset - 0.2
        assert (segment.start, segment.end) == (round(start / SAMPLE_RATE, 3), round(end / SAMPLE_RATE, 3))
    covered = {kind: sum(end - start for start, end in transcriber.windows(waveform, windows=kind)) / len(waveform)
               for kind in ("vad", "energy")}
    assert covered["vad"] < 0.7 and covered["energy"] > 0.95  # the noise floor defeats the energy splitter


@pytest.fixture(scope="module")
def padded_checkpoint(checkpoint, tmp_path_factory):
    """The same checkpoint, trained (it says) with up to 0.3 s of silence after its utterances."""
    raw = torch.load(checkpoint, weights_only=True)
    raw[CHECKPOINT_KEY]["preprocessing"]["silence_pad_seconds"] = 0.3
    path = tmp_path_factory.mktemp("padded") / "padded.ckpt"
    torch.save(raw, path)
    return path


def test_vad_windows_end_as_far_after_speech_as_training_silence(padded_checkpoint, speech):
    waveform, pad_samples = speech[0], round(0.2 * SAMPLE_RATE)
    transcriber = mms.Transcriber.from_checkpoint(padded_checkpoint, device="cpu")
    windows = transcriber.windows(waveform)
    assert windows == transcriber.windows(waveform, vad=VADOptions(speech_pad_after_seconds=0.3))
    chosen = transcriber.windows(waveform, vad=VADOptions(speech_pad_after_seconds=0.1))  # an explicit pad wins
    assert len(windows) == 3 and [(start, end + pad_samples) for start, end in chosen] == windows


@pytest.mark.parametrize("alignment", ["auto", "attention"])  # auto: CTC forced alignment with the CTC head
def test_word_timestamps_are_in_order_and_inside_their_segment(transcriber, speech, alignment):
    [transcript] = transcriber([speech[0]], options=NO_CHECKS, word_timestamps=True, alignment=alignment)
    assert len(transcript.segments) == 3 and transcript.words
    times = [t for word in transcript.words for t in (word.start, word.end)]
    assert times == sorted(times)
    for segment in transcript.segments:
        assert [word.word for word in segment.words] == segment.text.split()
        assert all(segment.start <= w.start <= w.end <= segment.end and 0 <= w.probability <= 1 for w in segment.words)


def test_silence_and_noise_alone_give_no_words(transcriber):
    recordings = [np.zeros(5 * SAMPLE_RATE, dtype=np.float32), noise(5, -40.0, seed=1), noise(5, -20.0, seed=2)]
    counts = []
    items = list(transcriber.stream(recordings, word_timestamps=True, progress=lambda *c: counts.append(c)))
    assert [item.transcript.segments for item in items] == [[], [], []] and counts[-1] == (0, 0)
    assert [item.transcript.unheard_windows for item in items] == [0, 0, 0]


def test_improbable_windows_are_dropped(transcriber, speech):
    fallback = {"temperature": (0.0, 0.5), "best_of": 2}
    dropped = transcriber([speech[0]], **fallback)[0]  # random weights: every decoding fails the checks
    assert dropped.text == "" and dropped.segments == [] and dropped.unheard_windows == 3
    kept = transcriber([speech[0]], drop_failed=False, **fallback)[0]
    assert len(kept.segments) == 3 and kept.text and kept.unheard_windows == 0


def test_windows_of_several_files_share_batches(transcriber, speech, monkeypatch):
    two_sentences = speech[0][: int((speech[1][1][1] + 0.5) * SAMPLE_RATE)]
    batches, decode = [], transcriber.decode_windows
    monkeypatch.setattr(transcriber, "decode_windows", lambda w, *rest: batches.append(len(w)) or decode(w, *rest))
    stream = transcriber.stream([two_sentences] * 3, options=NO_CHECKS, batch_size=4)
    first = next(stream)  # the first two recordings are complete after the first batch
    assert batches == [4] and first.index == 0 and first.transcript.segments
    assert [item.index for item in stream] == [1, 2] and batches == [4, 2]


def test_recordings_are_read_ahead_only_where_a_core_is_spare(transcriber, monkeypatch):
    monkeypatch.setattr(transcription, "usable_cores", lambda: 2)
    monkeypatch.setattr(transcription.torch, "get_num_threads", lambda: 2)
    assert transcriber.read_ahead_seconds(NO_CHECKS) == 0  # decoding fills the CPU: VAD in turn
    monkeypatch.setattr(transcription.torch, "get_num_threads", lambda: 1)
    assert transcriber.read_ahead_seconds(NO_CHECKS) == READ_AHEAD_SECONDS
    assert transcriber.read_ahead_seconds(replace(NO_CHECKS, read_ahead_seconds=5.0)) == 5.0


def test_options_are_checked_before_reading(transcriber):
    with pytest.raises(TypeError, match="unknown transcription option"):
        transcriber.stream([], vad_threshold=0.3)
    with pytest.raises(ValueError, match="windows must be one of vad, energy"):
        transcriber.stream([], windows="loud")
    assert mms.TranscriptionOptions(temperature=0.2).temperature == (0.2,)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory, speech):
    folder = tmp_path_factory.mktemp("audio")
    soundfile.write(folder / "talk.wav", speech[0], SAMPLE_RATE)
    soundfile.write(folder / "silence.wav", np.zeros(3 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    soundfile.write(folder / "noise.flac", noise(3, -30.0, seed=3), SAMPLE_RATE)
    return folder


def test_cli_reports_no_speech_and_writes_an_empty_transcript(checkpoint, audio_files, tmp_path, capsys):
    files = [str(audio_files / "silence.wav"), str(audio_files / "noise.flac")]
    assert main(["transcribe", *files, "--checkpoint", str(checkpoint), "--output-dir", str(tmp_path),
                 "--output-format", "all"]) == 0
    err = capsys.readouterr().err
    assert all(f"{name}: no speech found; wrote an empty transcript" in err for name in files) and "error" not in err
    for stem in ("silence", "noise"):
        assert (tmp_path / f"{stem}.txt").read_text() == "" and (tmp_path / f"{stem}.srt").read_text() == ""
        assert json.loads((tmp_path / f"{stem}.json").read_text())["segments"] == []


def test_cli_tells_speech_that_failed_the_checks_from_silence(checkpoint, audio_files, tmp_path, capsys):
    talk, fallback = str(audio_files / "talk.wav"), ["--temperature-increment-on-fallback", "0.5", "--best-of", "2"]
    common = [talk, "--checkpoint", str(checkpoint), *fallback]
    assert main(["transcribe", *common, "--output-dir", str(tmp_path / "dropped")]) == 0
    out, err = capsys.readouterr()
    assert out == f"{talk}\t\n"  # random weights: every decoding fails the checks
    assert f"{talk}: speech found in 3 window(s), but no decoding of it passed the checks" in err
    assert "no speech found" not in err
    assert main(["transcribe", *common, "--output-dir", str(tmp_path / "kept"), "--keep-failed"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{talk}\t") and out.strip() != talk and "passed the checks" not in err
    assert (tmp_path / "kept" / "talk.txt").read_text().strip()


def test_cli_every_output_format_parses_with_one_word_per_cue(checkpoint, audio_files, tmp_path):
    talk = str(audio_files / "talk.wav")
    assert main(["transcribe", talk, "--checkpoint", str(checkpoint), "--output-dir", str(tmp_path),
                 "--output-format", "all", "--max-words-per-cue", "1", *NO_CHECKS_FLAGS]) == 0
    record = json.loads((tmp_path / "talk.json").read_text())
    words = [word for segment in record["segments"] for word in segment["words"]]
    assert len(record["segments"]) == 3 and words
    cues = list(srt.parse((tmp_path / "talk.srt").read_text(), ignore_errors=False))
    assert [(c.content, c.start.total_seconds()) for c in cues] == [(w["word"], w["start"]) for w in words]
    captions = list(webvtt.from_string((tmp_path / "talk.vtt").read_text()))
    assert [c.text for c in captions] == [w["word"] for w in words]
    rows = list(csv.reader(io.StringIO((tmp_path / "talk.tsv").read_text()), delimiter="\t"))
    assert rows[0] == ["start", "end", "text"] and [r[2] for r in rows[1:]] == [s["text"] for s in record["segments"]]
    assert (tmp_path / "talk.txt").read_text().splitlines() == [s["text"] for s in record["segments"]]


def test_cli_format_alias_and_options(checkpoint, audio_files, tmp_path, capsys):
    talk, args = str(audio_files / "talk.wav"), ["--checkpoint", str(checkpoint), *NO_CHECKS_FLAGS]
    assert main(["transcribe", talk, *args, "--output-dir", str(tmp_path / "a"), "--format", "json"]) == 0
    assert main(["transcribe", talk, *args, "--output-dir", str(tmp_path / "b"), "--output-format", "json"]) == 0
    assert (tmp_path / "a" / "talk.json").read_text() == (tmp_path / "b" / "talk.json").read_text()
    assert main(["transcribe", talk, *args, "--output-dir", str(tmp_path / "c"), "--windows", "energy",
                 "--vad-threshold", "0.9"]) == 0
    capsys.readouterr()
    for bad, message in [(["--vad-threshold", "1.5"], "VAD threshold must be in (0, 1)"),
                         (["--max-words-per-cue", "0"], "--max-words-per-cue must be >= 1"),
                         (["--vad-pad-after", "-0.1"], "VAD speech_pad_after_seconds must be a finite number >= 0"),
                         (["--best-of", "0"], "best_of must be >= 1")]:
        assert main(["transcribe", talk, *args, *bad]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: ") and message in error and "\n" not in error


def test_cli_pads_after_speech_as_the_checkpoint_was_trained_unless_told(padded_checkpoint, audio_files, tmp_path,
                                                                        capsys):
    talk, args = str(audio_files / "talk.wav"), ["--checkpoint", str(padded_checkpoint), *NO_CHECKS_FLAGS]
    ends = {}
    for pad, extra in [("0.3", []), ("0.1", ["--vad-pad-after", "0.1"])]:
        assert main(["transcribe", talk, *args, "--output-dir", str(tmp_path / pad), "--format", "json", *extra]) == 0
        assert "VAD pads 0.1 s before speech, " + pad + " s after" in capsys.readouterr().err
        ends[pad] = [segment["end"] for segment in json.loads((tmp_path / pad / "talk.json").read_text())["segments"]]
    assert len(ends["0.3"]) == 3 and ends["0.3"] == pytest.approx([end + 0.2 for end in ends["0.1"]], abs=1e-3)
