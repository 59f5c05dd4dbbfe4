"""Audio loading, the log-mel frontend and SpecAugment."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from multimodal_s2s.errors import InputError
from multimodal_s2s.preprocessing.audio import (
    HOP_LENGTH,
    N_MELS,
    SAMPLE_RATE,
    AudioLoadError,
    LogMelFrontend,
    SpecAugment,
    load_audio,
)

CD_RATE = 44100


def _tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    """(S,) float32 sine at half amplitude."""
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_44k_wav_becomes_16k_mono(tmp_path):
    left, right = _tone(CD_RATE, 1.0), np.zeros(CD_RATE, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), CD_RATE)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SAMPLE_RATE) <= 1
    # Mono is the channel mean: a 0.5-amplitude tone mixed with silence peaks near 0.25.
    assert 0.2 < np.abs(audio).max() < 0.3


@pytest.mark.parametrize("suffix, subtype", [(".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_flac_and_ogg_load(tmp_path, suffix, subtype):
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, _tone(SAMPLE_RATE, 0.5), SAMPLE_RATE, subtype=subtype)
    audio = load_audio(path)
    assert audio.shape == (SAMPLE_RATE // 2,)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.05)


def test_8k_file_is_resampled(tmp_path):
    path = tmp_path / "phone.wav"
    soundfile.write(path, _tone(8000, 0.25), 8000)
    assert abs(len(load_audio(path)) - SAMPLE_RATE // 4) <= 1


@pytest.mark.parametrize("content", [b"this is plainly not audio\n" * 20, bytes(range(256)) * 8])
def test_non_audio_file_names_the_file(tmp_path, content):
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    with pytest.raises(AudioLoadError, match="notes.wav.*not an audio file"):
        load_audio(path)


def test_empty_wav_names_the_file(tmp_path):
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioLoadError, match="silent.wav.*empty"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioLoadError, match="nowhere.flac"):
        load_audio(tmp_path / "nowhere.flac")


def test_frontend_shapes_and_frame_lengths():
    frontend = LogMelFrontend()
    lengths = torch.tensor([16000, 8000, 161])
    features, frames = frontend(torch.randn(3, 16000), lengths)
    assert features.shape == (3, N_MELS, 16000 // HOP_LENGTH + 1)
    assert frames.tolist() == [101, 51, 2]
    assert features.dtype == torch.float32


def test_frontend_normalizes_valid_frames_only():
    frontend = LogMelFrontend()
    speech = torch.randn(1, 8000)
    alone, _ = frontend(speech)
    padded = torch.cat([speech, 100 * torch.randn(1, 8000)], dim=1)  # loud garbage after the end
    batch = torch.cat([padded, torch.randn(1, 16000)])
    features, frames = frontend(batch, torch.tensor([8000, 16000]))
    valid = features[0, :, : frames[0]]
    torch.testing.assert_close(valid, alone[0], atol=1e-5, rtol=1e-5)
    assert valid.mean().abs() < 1e-4 and (valid.std(unbiased=False) - 1).abs() < 1e-3
    assert features[0, :, frames[0] :].abs().max() == 0


def test_frontend_rejects_bad_inputs():
    frontend = LogMelFrontend()
    with pytest.raises(InputError, match="float"):
        frontend(torch.zeros(2, 100, dtype=torch.long))
    with pytest.raises(InputError, match="1..100"):
        frontend(torch.zeros(2, 100), torch.tensor([100, 0]))
    with pytest.raises(InputError, match="empty"):
        frontend(torch.zeros(0, 100))


def test_spec_augment_only_in_training():
    augment = SpecAugment(freq_mask_width=20, time_mask_width=20)
    features = torch.randn(4, N_MELS, 200)
    augment.eval()
    assert torch.equal(augment(features), features)
    augment.train()
    torch.manual_seed(0)
    masked = augment(features)
    assert masked.shape == features.shape
    zeroed = masked == 0
    assert zeroed.any()
    assert not torch.equal(zeroed[0], zeroed[1])  # each example draws its own masks
