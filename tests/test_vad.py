"""Silero VAD windows: espeak-ng sentences between silences under a noise floor are found, pauses separate
windows, long speech is cut at a pause below the limit, silence and noise alone give no windows, and loading
the VAD keeps torch's thread count."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from asr_fixtures import ONSET_AMPLITUDE, join_with_pauses, noise, spoken_sentences

from multimodal_s2s.audio import SAMPLE_RATE
from multimodal_s2s.data import espeak
from multimodal_s2s.vad import VADOptions, VoiceActivityDetector

needs_espeak = pytest.mark.skipif(not espeak.espeak_available(), reason="espeak-ng is not installed")
TOLERANCE_SECONDS = 0.1


@pytest.fixture(scope="module")
def vad():
    return VoiceActivityDetector()


@pytest.fixture(scope="module")
def clips():
    if not espeak.espeak_available():
        pytest.skip("espeak-ng is not installed")
    return spoken_sentences()


@needs_espeak
@pytest.mark.parametrize("noise_dbfs", [None, -50.0, -40.0])
def test_windows_find_each_sentence_in_silence_and_noise(vad, clips, noise_dbfs):
    waveform, speech = join_with_pauses(clips, [1.0, 1.2, 0.8, 1.0])
    if noise_dbfs is not None:
        waveform = waveform + noise(len(waveform) / SAMPLE_RATE, noise_dbfs)
    windows = [
        (start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in vad.windows(waveform, max_seconds=5, merge_seconds=1)
    ]
    assert len(windows) == len(clips)  # one window per sentence: the pauses are not bridged
    for (start, end), (onset, offset) in zip(windows, speech, strict=True):
        assert start <= onset and onset - start < 0.2 + TOLERANCE_SECONDS  # padding, not the whole pause
        assert end >= offset - 0.2  # espeak's last syllable fades out
    merged = vad.windows(waveform, max_seconds=30)
    assert len(merged) == 1 and merged[0][0] == round(windows[0][0] * SAMPLE_RATE)


@needs_espeak
def test_speech_from_the_first_sample_is_found(vad):
    voice = espeak.Voice("en-us", "m1", 170, 50)
    for word in ("two", "eight", "one", "three", "five"):  # each was missed, loud or quiet, by a cold model
        clip = espeak.synthesize(word, voice)
        speech = clip[np.flatnonzero(np.abs(clip) > ONSET_AMPLITUDE)[0] :]
        for peak in (0.5, 0.02):  # FSDD's quietest clips peak at 0.02
            scaled = (speech * peak / np.abs(speech).max()).astype(np.float32)
            starts = [start / SAMPLE_RATE for start, _ in vad.windows(scaled, max_seconds=5)]
            assert len(starts) == 1 and starts[0] < 0.2, (word, peak)  # a quiet "f" may be heard late


@needs_espeak
def test_long_speech_is_cut_at_a_pause(vad, clips):
    waveform, speech = join_with_pauses(clips * 2, [0.5] + [0.4] * 6)  # about 14 s of speech with short pauses
    max_seconds = 4.0
    windows = vad.windows(waveform, max_seconds=max_seconds)
    assert all(0 < end - start <= max_seconds * SAMPLE_RATE for start, end in windows)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(windows, windows[1:], strict=False))
    covered = sum(end - start for start, end in windows)
    assert covered >= sum(offset - onset for onset, offset in speech) * SAMPLE_RATE
    speaking = np.zeros(len(waveform), dtype=bool)
    for onset, offset in speech:
        speaking[int(onset * SAMPLE_RATE) : int(offset * SAMPLE_RATE)] = True
    cuts = [end for (_, end), (next_start, _) in zip(windows, windows[1:], strict=False) if end == next_start]
    assert all(not speaking[cut] for cut in cuts)  # every cut inside speech falls in a pause


def test_silence_and_noise_alone_have_no_speech(vad):
    assert vad.windows(np.zeros(5 * SAMPLE_RATE, dtype=np.float32), max_seconds=30) == []
    for dbfs in (-50.0, -40.0, -20.0):
        assert vad.windows(noise(5, dbfs, seed=1), max_seconds=30) == []
    assert vad.windows(np.zeros(0, dtype=np.float32), max_seconds=30) == []


def test_bad_input_and_options(vad):
    with pytest.raises(ValueError, match="1-D float waveform"):
        vad.speech_probabilities(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="threshold"):
        VADOptions(threshold=1.5)
    with pytest.raises(ValueError, match="min_silence_seconds"):
        VADOptions(min_silence_seconds=-1)


def test_loading_keeps_torch_threads(monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "silero_vad"]:
        monkeypatch.delitem(sys.modules, name)  # imported anew: its torch.set_num_threads(1) runs again
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        VoiceActivityDetector()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
