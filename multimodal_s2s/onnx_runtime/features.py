"""Inputs of an exported model in numpy alone: images as ``Captioner.prepare`` makes them (pillow resize, scale,
normalize) and the normalized log-mel of ``preprocessing.audio.LogMelFrontend`` (numpy FFT, the export's own
mel filterbank), so that a deployment needs neither torch nor torchvision nor torchaudio."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

#: The audio frontend's numbers (``preprocessing.audio``): 25 ms Hann window, 10 ms hop at 16 kHz.
N_FFT, HOP_LENGTH = 400, 160
LOG_FLOOR, MIN_STD = 1e-10, 1e-5


def image_pixels(image: Image.Image, size: Sequence[int], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB image -> (3, H, W) float32 at ``size`` (H, W): bilinear resize (antialiased, as torchvision's), 0..1,
    normalized with ``mean`` and ``std``."""
    height, width = (int(side) for side in size)
    resized = np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0  # (H, W, 3)
    normalized = (resized - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1))


def log_mel(waveforms: Sequence[np.ndarray], filters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz waveforms (S_i,) -> normalized log-mel (B, n_mels, F_max) float32 (0 past each length) and frame
    lengths (B,) int64 (S_i // 160 + 1); filters (n_mels, 201)."""
    features = [_one_log_mel(np.asarray(waveform, dtype=np.float32), filters) for waveform in waveforms]
    lengths = np.array([f.shape[1] for f in features], dtype=np.int64)
    batch = np.zeros((len(features), filters.shape[0], int(lengths.max())), dtype=np.float32)
    for row, f in enumerate(features):
        batch[row, :, : f.shape[1]] = f
    return batch, lengths


def _one_log_mel(waveform: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """(S,) -> (n_mels, S // 160 + 1): centred frames (zero padding), power spectrum, mel, log, normalized by
    the utterance's mean and standard deviation."""
    padded = np.pad(waveform, (N_FFT // 2, N_FFT // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]  # (F, 400)
    window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (F, 201)
    mel = np.log(np.maximum(filters.astype(np.float64) @ power.T, LOG_FLOOR))  # (n_mels, F)
    return ((mel - mel.mean()) / max(mel.std(), MIN_STD)).astype(np.float32)
