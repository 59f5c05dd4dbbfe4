"""Silero VAD windows: espeak-ng sentences between silences under a noise floor are found, pauses separate
windows, long speech is cut at a pause below the limit, silence and noise alone give no windows, loading
the VAD keeps torch's thread count, and the suite's runner of Silero's weights (its STFT and convolutions as
matrix products) gives the package's probabilities, or the package's runner is used; importing the speech package
imports neither Lightning nor the VAD's runtime (onnx, onnxruntime, silero-vad) until a detector is built."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from asr_fixtures import ONSET_AMPLITUDE, join_with_pauses, noise, spoken_sentences

from multimodal_s2s.data import espeak
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.speech import vad as vad_module
from multimodal_s2s.speech.silero_graph import SileroMatmul
from multimodal_s2s.speech.vad import VADOptions, VoiceActivityDetector, pad_regions

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


def test_pads_widen_regions_each_side_and_keep_them_disjoint_inside_the_audio():
    regions = [(50, 100), (300, 400), (420, 480), (560, 590)]  # pauses of 200, 20 and 80 samples
    padded = pad_regions(regions, before=20, after=60, length=600)
    assert padded == [(30, 160), (280, 415), (415, 540), (540, 600)]  # 20 samples split 15:5, as the pads
    assert pad_regions([(5, 10)], before=20, after=60, length=40) == [(0, 40)]
    assert pad_regions(regions, before=0, after=0, length=600) == regions


@needs_espeak
def test_after_pad_is_applied_to_detected_speech(vad, clips):
    waveform, _ = join_with_pauses(clips, [0.0, 0.2, 0.8, 0.0])  # speech at both ends, a short and a long pause
    probabilities = vad.speech_probabilities(waveform)
    regions = VoiceActivityDetector(VADOptions(speech_pad_before_seconds=0, speech_pad_after_seconds=0)).speech_regions(
        waveform, probabilities
    )
    before, after = 0.2, 0.5
    padded = VoiceActivityDetector(
        VADOptions(speech_pad_before_seconds=before, speech_pad_after_seconds=after)
    ).speech_regions(waveform, probabilities)
    (start_0, end_0), (start_1, end_1), (start_2, end_2) = (np.array(r) / SAMPLE_RATE for r in regions)
    assert len(regions) == len(padded) == len(clips) and start_1 - end_0 < before + after < start_2 - end_1
    assert padded[0][0] == 0 and padded[-1][1] == len(waveform)  # clamped to the audio
    assert padded[1][1] == regions[1][1] + after * SAMPLE_RATE and padded[2][0] == regions[2][0] - before * SAMPLE_RATE
    cut = (end_0 + (start_1 - end_0) * after / (before + after)) * SAMPLE_RATE  # the short pause split 5:2
    assert padded[0][1] == padded[1][0] == pytest.approx(cut, abs=1)


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
    with pytest.raises(ValueError, match="speech_pad_after_seconds must be a finite number >= 0"):
        VADOptions(speech_pad_after_seconds=float("nan"))


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


def test_importing_speech_loads_no_lightning_and_the_vads_runtime_only_with_a_detector():
    modules = ("vad", "silero_graph", "windows", "energy", "fallback", "word_timing", "subtitles")
    heavy = ("lightning", "onnx", "onnxruntime", "silero_vad")
    script = (
        f"import sys; import {', '.join(f'multimodal_s2s.speech.{module}' for module in modules)}\n"
        f"print(*[name in sys.modules for name in {heavy}])\n"
        "multimodal_s2s.speech.vad.VoiceActivityDetector()\n"
        f"print(*[name in sys.modules for name in {heavy}])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["False False False False", "False True True True"]


def packaged_runner():
    """The package's own runner of its sequence model (what ``SileroMatmul`` replaces)."""
    sequence_vad, _ = vad_module._silero()
    model_file = vad_module.resources.files(vad_module.MODEL_PACKAGE).joinpath(vad_module.SEQUENCE_MODEL)
    return sequence_vad.SileroVADSequence(str(model_file), sampling_rate=SAMPLE_RATE)


def test_matmul_runner_gives_the_packaged_probabilities_across_blocks(vad):
    assert isinstance(vad.model, SileroMatmul)
    bursts = np.tile(vad_module.probe_signal(), 6)[: 12 * SAMPLE_RATE - 100]  # not a whole number of frames
    waveform = bursts + noise(len(bursts) / SAMPLE_RATE, -50.0)
    expected = packaged_runner().audio_forward(waveform, SAMPLE_RATE)
    assert expected.max() > 0.5 and expected.min() < 0.1  # speech-like and not: the probe tells them apart
    for max_frames in (512, 7):  # one block, and the LSTM state carried over 54 blocks
        vad.model.max_frames = max_frames
        try:
            probabilities = vad.model.audio_forward(waveform)
        finally:
            vad.model.max_frames = 512
        assert probabilities.shape == expected.shape == (-(-len(waveform) // 512),)
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@needs_espeak
def test_matmul_runner_finds_the_packaged_regions_in_speech(vad, clips):
    waveform, _ = join_with_pauses(clips, [1.0, 0.4, 0.8, 1.0])
    waveform = waveform + noise(len(waveform) / SAMPLE_RATE, -40.0)
    packaged = packaged_runner().audio_forward(np.concatenate([vad_module.lead_in(waveform), waveform]), SAMPLE_RATE)
    packaged = packaged[vad_module.LEAD_IN_FRAMES :]  # the detector runs the model from a lead-in too
    probabilities = vad.speech_probabilities(waveform)
    np.testing.assert_allclose(probabilities, packaged, atol=1e-5)
    assert vad.speech_regions(waveform, probabilities) == vad.speech_regions(waveform, packaged)


@pytest.mark.parametrize(
    ("change", "problem"),
    [("perturb", "gives other speech probabilities"), ("remove", "cannot read its weights")],
)
def test_a_model_the_matmul_runner_does_not_reproduce_falls_back_to_the_package(monkeypatch, change, problem):
    original_load = onnx.load

    def load(path):
        model = original_load(path)
        bias = next(tensor for tensor in model.graph.initializer if tensor.name == "encoder.0.bias")
        if change == "remove":
            model.graph.initializer.remove(bias)
        else:
            bias.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bias) + 0.5, bias.name))
        return model

    monkeypatch.setattr(onnx, "load", load)  # load_model imports onnx when it runs
    with pytest.warns(UserWarning, match=f"silero_vad_16k_sequence.onnx: the fast runner of Silero VAD {problem}"):
        model = vad_module.load_model()
    assert not isinstance(model, SileroMatmul)
    probe = vad_module.probe_signal()
    np.testing.assert_array_equal(model.audio_forward(probe, SAMPLE_RATE), packaged_runner().audio_forward(probe))
