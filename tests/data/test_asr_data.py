"""ASR data: each format loads (NeMo manifest, LibriSpeech layout, FSDD, the espeak corpus), any rate and
channel count becomes 16 kHz mono, batches are bucketed by duration."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import soundfile
import torch
from asr_fixtures import write_librispeech, write_tone_manifest
from conftest import shared_data

from multimodal_s2s.checkpoint import Task
from multimodal_s2s.data import espeak
from multimodal_s2s.data.asr import (
    ASRDataModule,
    SpeechDataset,
    Utterance,
    read_fsdd,
    read_librispeech,
    read_manifest,
)
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.types import BOS_ID, EOS_ID

needs_espeak = pytest.mark.skipif(not espeak.espeak_available(), reason="espeak-ng is not installed")


def test_manifest_reads_relative_paths_and_durations(tmp_path):
    manifest = write_tone_manifest(tmp_path, 3, seed=0, name="train")
    utterances = read_manifest(manifest)
    assert len(utterances) == 3
    for utterance in utterances:
        assert utterance.audio_path.parent == tmp_path and utterance.audio_path.is_file()
        assert utterance.duration == pytest.approx(soundfile.info(utterance.audio_path).duration, abs=1e-3)
        assert set(utterance.text.split()) <= {"up", "down", "left", "right"}


def test_manifest_without_duration_reads_it_from_the_file(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32), SAMPLE_RATE)
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio_filepath": "a.wav", "text": "hi"}) + "\n")
    assert read_manifest(tmp_path / "m.jsonl")[0].duration == pytest.approx(0.5)


def test_bad_manifest_line_names_file_and_line(tmp_path):
    lines = [json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "x"}), json.dumps({"text": "y"})]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"m\.jsonl line 2: .*audio_filepath"):
        read_manifest(tmp_path / "m.jsonl")


def test_librispeech_layout_and_speaker_split(tmp_path):
    write_librispeech(tmp_path)
    utterances = read_librispeech(tmp_path)
    assert len(utterances) == 6 and utterances[0].text == "HELLO WORLD NUMBER 0"
    assert {u.speaker for u in utterances} == {"11", "22", "33"}
    data = ASRDataModule(format="librispeech", root=str(tmp_path), val_speakers=["22"], batch_size=2)
    data.setup("fit")
    assert {u.speaker for u in data.splits["val"]} == {"22"}
    assert {u.speaker for u in data.splits["train"]} == {"11", "33"}
    example = data.datasets["train"][0]
    assert example["target"] == "hello world number 0" and example["references"] == ["HELLO WORLD NUMBER 0"]


def test_unknown_val_speaker_is_a_clear_error(tmp_path):
    write_librispeech(tmp_path)
    data = ASRDataModule(format="librispeech", root=str(tmp_path), val_speakers=["99"])
    with pytest.raises(ValueError, match="val_speakers.*11, 22, 33"):
        data.setup("fit")


def test_real_librispeech_mini_opus():
    root = shared_data("librispeech-mini")
    utterances = read_librispeech(root, speakers={"1970"})
    assert len(utterances) == 40 and all(u.audio_path.suffix == ".opus" for u in utterances)
    waveform = SpeechDataset(utterances[:1])[0]["inputs"]
    assert waveform.dtype == torch.float32 and waveform.dim() == 1
    assert len(waveform) / SAMPLE_RATE == pytest.approx(utterances[0].duration, abs=0.05)


def test_real_fsdd_index_ranges_and_digit_words():
    root = shared_data("fsdd")
    val = read_fsdd(root, (5, 9))
    assert len(val) == 6 * 10 * 5  # 6 speakers, 10 digits, recordings 5..9
    first = val[0]
    digit = int(first.audio_path.name.split("_")[0])
    assert first.text == ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")[digit]
    waveform = SpeechDataset([first])[0]["inputs"]  # 8 kHz on disk, 16 kHz here
    assert len(waveform) == pytest.approx(first.duration * SAMPLE_RATE, abs=2)


def test_fsdd_file_names(tmp_path):
    (tmp_path / "recordings").mkdir()
    for name in ("3_alice_7.wav", "9_bob_12.wav", "notes.wav"):
        soundfile.write(tmp_path / "recordings" / name, np.zeros(800, dtype=np.float32), 8000)
    utterances = read_fsdd(tmp_path, (5, 9))
    assert [(u.text, u.speaker) for u in utterances] == [("three", "alice")]


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_any_rate_and_channel_count_becomes_16k_mono(tmp_path, suffix):
    rate, seconds = 44100, 0.5
    time = np.arange(int(rate * seconds)) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * time), np.zeros_like(time)
    soundfile.write(tmp_path / f"s{suffix}", np.stack([left, right], axis=1).astype(np.float32), rate)
    utterance = Utterance(tmp_path / f"s{suffix}", "tone", seconds)
    waveform = SpeechDataset([utterance])[0]["inputs"].numpy()
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert len(waveform) == pytest.approx(SAMPLE_RATE * seconds, rel=0.01 if suffix == ".mp3" else 1e-3)
    middle = waveform[len(waveform) // 4 : 3 * len(waveform) // 4]
    assert np.abs(middle).max() == pytest.approx(0.25, abs=0.03)  # the mean of a 0.5 tone and silence


def test_cached_audio_matches_decoded_audio(tmp_path):
    utterances = read_manifest(write_tone_manifest(tmp_path, 2, seed=0, name="m"))
    plain, cached = SpeechDataset(utterances), SpeechDataset(utterances, cache_audio=True)
    for _ in range(2):  # the second read comes from the cache
        assert torch.allclose(plain[1]["inputs"], cached[1]["inputs"], atol=1e-4)


def manifest_data(folder, train: int, val: int, **kwargs) -> ASRDataModule:
    """A set-up data module over ``train`` and ``val`` tone utterances written to ``folder``."""
    data = ASRDataModule(
        format="manifest",
        root=str(write_tone_manifest(folder, train, seed=0, name="train")),
        val_root=str(write_tone_manifest(folder, val, seed=1, name="val")),
        **kwargs,
    )
    data.setup("fit")
    return data


def test_silence_padding_surrounds_training_audio_only(tmp_path):
    data = manifest_data(tmp_path, 4, 2, silence_pad=0.25)
    train, val = data.datasets["train"], data.datasets["val"]
    original = train.waveform(0)
    padded = [train[0]["inputs"].numpy() for _ in range(8)]
    for waveform in padded:
        before = int(np.flatnonzero(waveform)[0] - np.flatnonzero(original)[0])
        after = len(waveform) - len(original) - before
        assert 0 <= before <= 0.25 * SAMPLE_RATE and 0 <= after <= 0.25 * SAMPLE_RATE
        assert np.array_equal(waveform[before : before + len(original)], original)  # the clip, moved
        assert not waveform[:before].any() and not waveform[before + len(original) :].any()
    assert len({len(waveform) for waveform in padded}) > 1  # drawn anew on each access
    assert np.array_equal(val[0]["inputs"].numpy(), val.waveform(0))
    assert data.preprocessing.silence_pad_seconds == 0.25  # recorded in the checkpoint header
    with pytest.raises(ValueError, match="data.silence_pad must be a finite number of seconds >= 0, got -0.1"):
        ASRDataModule(format="espeak", silence_pad=-0.1)


def test_batches_are_padded_waveforms_with_token_targets(tmp_path):
    data = manifest_data(tmp_path, 12, 3, batch_size=4)
    batch = next(iter(data.val_dataloader()))
    assert batch["inputs"].shape == (3, int(batch["lengths"].max()))
    assert (batch["tokens"][:, 0] == BOS_ID).all() and (batch["tokens"] == EOS_ID).sum() == 3
    assert data.tokenizer.decode(batch["tokens"][0].tolist()) == batch["references"][0][0]
    assert data.task == Task.ASR and data.preprocessing.sample_rate == SAMPLE_RATE


def test_training_batches_are_bucketed_by_duration(tmp_path):
    utterances = [Utterance(tmp_path / f"{i}.wav", "x", duration) for i, duration in enumerate(range(1, 129))]
    data = ASRDataModule(format="espeak", batch_size=8)
    data.datasets["train"] = SpeechDataset(utterances)
    sampler = data.train_dataloader().batch_sampler
    spreads = [max(utterances[i].duration for i in b) - min(utterances[i].duration for i in b) for b in sampler]
    assert len(spreads) == 16 and statistics.mean(spreads) < 10  # random batches of 8 from 1..128 s: ~90 s
    assert sorted(i for batch in sampler for i in batch) == list(range(128))


def test_espeak_missing_gives_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng") as error:
        espeak.espeak_corpus(2, seed=0, cache_dir=tmp_path)
    assert "\n" not in str(error.value)


def test_espeak_sentences_are_seeded_and_exclusive():
    first = espeak.sentences(50, seed=3)
    assert first == espeak.sentences(50, seed=3) and len(set(first)) == 50
    others = espeak.sentences(50, seed=4, exclude=set(first))
    assert not set(others) & set(first)
    assert all(set(sentence.split()) <= espeak.vocabulary() for sentence in first + others)


@needs_espeak
def test_espeak_corpus_is_made_once_then_cached(tmp_path, monkeypatch):
    manifest = espeak.espeak_corpus(3, seed=0, cache_dir=tmp_path)
    utterances = read_manifest(manifest)
    assert [u.text for u in utterances] == espeak.sentences(3, seed=0)
    assert all(0.5 < u.duration < 8 and soundfile.info(u.audio_path).samplerate == SAMPLE_RATE for u in utterances)
    monkeypatch.setattr(espeak, "synthesize", lambda *args: pytest.fail("the cache was not used"))
    assert espeak.espeak_corpus(3, seed=0, cache_dir=tmp_path) == manifest
