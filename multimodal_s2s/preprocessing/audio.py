"""Audio: constants, loading and resampling, the log-mel frontend, SpecAugment, and ``AudioFeatures``
(waveforms to the normalized log-mel an audio encoder reads, the same in training and inference).

Every audio number of the package lives here: 16 kHz mono waveforms, 80 mel bins,
a 25 ms window (400 samples) and a 10 ms hop (160 samples), i.e. 100 frames per second,
and windows of at most 30 s (3000 frames) for long-form transcription.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile
import soxr
import torch
from torch import Tensor, nn
from torchaudio.transforms import FrequencyMasking, MelSpectrogram, TimeMasking

from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.masks import conv_output_lengths, lengths_to_mask

SAMPLE_RATE = 16000
N_MELS = 80
N_FFT = 400  # 25 ms at 16 kHz
WIN_LENGTH = N_FFT
HOP_LENGTH = 160  # 10 ms at 16 kHz
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100
MAX_WINDOW_SECONDS = 30
MAX_WINDOW_FRAMES = MAX_WINDOW_SECONDS * FRAMES_PER_SECOND  # 3000

#: Power below which the mel spectrogram is clamped before the log (-23 in natural log).
LOG_FLOOR = 1e-10
#: Smallest standard deviation used to scale an utterance (a silent one would divide by 0).
MIN_STD = 1e-5

#: The log-mel front ends (``AudioFeatures``): the suite's per-utterance normalized one, or whisper's.
LOG_MELS = ("normalized", "whisper")
#: whisper's dynamic range below the loudest bin (log10 units), and its shift and scale of log10 power.
WHISPER_RANGE, WHISPER_SHIFT = 8.0, 4.0

#: SpecAugment defaults: the LibriSpeech "LD" policy of Park et al. 2019 (F=27, T=100, 2 + 2 masks).
FREQ_MASK_WIDTH = 27
TIME_MASK_WIDTH = 100
NUM_FREQ_MASKS = 2
NUM_TIME_MASKS = 2


class AudioLoadError(ValueError):
    """A file that cannot be loaded as audio: missing, not audio, unreadable or empty."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as a float32 mono waveform (S,) at ``sample_rate`` Hz.

    soundfile (libsndfile) reads wav, flac, ogg/vorbis, opus and mp3 where the installed
    libsndfile supports them; anything else goes through ``librosa.load`` (audioread).
    Channels are averaged; other rates are resampled with soxr (high quality, as librosa).
    Raises AudioLoadError, in one line naming the file, when it is missing, not audio or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"{path}: no such audio file")
    waveform, file_rate = _read_channels_first(path)  # (C, S)
    if waveform.shape[-1] == 0:
        raise AudioLoadError(f"{path}: empty audio file (zero samples)")
    mono = waveform.mean(axis=0)  # (S,)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")  # librosa's default resampler
    return np.ascontiguousarray(mono, dtype=np.float32)


def as_waveform(item: str | Path | np.ndarray | Tensor, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any recording a user may hold -> float32 mono (S,) at SAMPLE_RATE: a file path (``load_audio``), or
    samples (S,) or (channels, S) as a numpy array or tensor at ``sample_rate`` Hz (averaged, resampled;
    integer PCM scaled to -1..1).
    Raises AudioLoadError (one line) for anything else or an empty recording."""
    if isinstance(item, str | Path):
        return load_audio(item)
    if isinstance(item, Tensor):
        item = item.detach().cpu().float().numpy()
    if not isinstance(item, np.ndarray):
        raise AudioLoadError(f"cannot read a {type(item).__name__} as audio (give a path, numpy array or tensor)")
    if item.ndim not in (1, 2) or item.shape[-1] == 0 or not np.issubdtype(item.dtype, np.number):
        raise AudioLoadError(f"audio samples must be a non-empty numeric (S,) or (channels, S) array, got {item.shape}")
    scale = np.iinfo(item.dtype).max + 1 if np.issubdtype(item.dtype, np.integer) else 1  # int16 PCM -> -1..1
    mono = (np.asarray(item, dtype=np.float32) / scale).reshape(-1, item.shape[-1]).mean(axis=0)  # (S,)
    if sample_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _read_channels_first(path: Path) -> tuple[np.ndarray, int]:
    """(C, S) float32 samples and the file's sample rate, via soundfile then librosa."""
    try:
        samples, file_rate = soundfile.read(path, dtype="float32", always_2d=True)  # (S, C)
        return samples.T, file_rate
    except soundfile.LibsndfileError as error:  # a format libsndfile lacks (m4a...): let audioread try
        libsndfile_reason = error.error_string
    try:
        with warnings.catch_warnings():  # librosa warns that it falls back to audioread
            warnings.simplefilter("ignore")
            samples, file_rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
    except Exception as error:  # audioread's decoders raise many unrelated types
        raise AudioLoadError(f"{path}: not an audio file or unreadable ({libsndfile_reason})") from error
    return np.atleast_2d(samples), int(file_rate)


def _check_waveforms(waveform: Tensor, lengths: Tensor | None) -> Tensor:
    """Raise InputError for a bad batch; return lengths (B,) long, filled in when None."""
    if waveform.dim() != 2 or not waveform.is_floating_point():
        raise InputError(f"waveforms must be float (B, samples), got {waveform.dtype} {tuple(waveform.shape)}")
    batch, samples = waveform.shape
    if batch == 0 or samples == 0:
        raise InputError(f"empty waveform batch: shape {tuple(waveform.shape)}")
    if lengths is None:
        return torch.full((batch,), samples, dtype=torch.long, device=waveform.device)
    if lengths.shape != (batch,) or lengths.is_floating_point():
        raise InputError(f"lengths must be integer of shape ({batch},), got {lengths.dtype} {tuple(lengths.shape)}")
    if int(lengths.min()) < 1 or int(lengths.max()) > samples:
        raise InputError(f"waveform lengths {lengths.tolist()} must be in 1..{samples}")
    return lengths.to(device=waveform.device, dtype=torch.long)


class LogMelFrontend(nn.Module):
    """Waveforms (B, S) at 16 kHz + lengths (B,) in samples -> log-mel (B, n_mels, frames) + frame lengths (B,).

    Power mel spectrogram (25 ms Hann window, 10 ms hop, slaney mel scale), centred frames
    with zero padding at both ends, so an utterance of n samples has ``n // 160 + 1`` frames.
    Log: natural log of the power clamped at LOG_FLOOR.

    Normalization: per utterance, subtract the mean and divide by the standard deviation
    of its log-mel values over its valid frames and all mel bins (one scalar pair per
    utterance: removes gain, keeps the spectral shape). Samples past each length are zeroed
    first and frames past each frame length are set to 0 afterwards, so padding changes
    neither the valid frames nor their statistics: an utterance gives the same features
    alone or padded in a batch. Runs on the module's device, in float32.
    """

    def __init__(self, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        self.n_mels = n_mels
        self.melspec = MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=N_FFT,
            win_length=WIN_LENGTH,
            hop_length=HOP_LENGTH,
            n_mels=n_mels,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        )

    def frame_lengths(self, sample_lengths: Tensor) -> Tensor:
        """Samples (B,) -> frames (B,), as the centred STFT frames them."""
        return conv_output_lengths(sample_lengths, kernel_size=N_FFT, stride=HOP_LENGTH, padding=N_FFT // 2)

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """waveform (B, S) float, lengths (B,) samples (None = all S) -> ((B, n_mels, frames), (B,))."""
        lengths = _check_waveforms(waveform, lengths)
        sample_mask = lengths_to_mask(lengths, waveform.shape[1])  # (B, S)
        waveform = waveform.float() * sample_mask
        log_mel = self.melspec(waveform).clamp_min(LOG_FLOOR).log()  # (B, n_mels, frames)
        frame_lengths = self.frame_lengths(lengths)
        frame_mask = lengths_to_mask(frame_lengths, log_mel.shape[-1]).unsqueeze(1)  # (B, 1, frames)
        valid_count = (frame_lengths * self.n_mels).to(log_mel.dtype).view(-1, 1, 1)  # (B, 1, 1)
        mean = (log_mel * frame_mask).sum(dim=(1, 2), keepdim=True) / valid_count
        variance = (((log_mel - mean) * frame_mask) ** 2).sum(dim=(1, 2), keepdim=True) / valid_count
        normalized = (log_mel - mean) / variance.sqrt().clamp_min(MIN_STD)
        return normalized * frame_mask, frame_lengths


class WhisperLogMel(nn.Module):
    """Waveforms (B, S) + lengths (B,) -> whisper's log-mel (B, n_mels, 3000) + frame lengths (B,).

    As ``whisper.log_mel_spectrogram(whisper.pad_or_trim(audio))``: each waveform (zeroed past its length) is
    zero-padded or cut to 30 s, a centred STFT (400-sample Hann window, 160 hop, reflect padding) gives 3001
    frames of which the last is dropped, whisper's mel filters (librosa's slaney filters for n_fft 400, which
    its ``mel_filters.npz`` holds), log10 of the power clamped at 1e-10, floored at the utterance's maximum
    minus 8, then (x + 4) / 4. Frame lengths count the frames of the waveform itself (at most 3000).
    """

    def __init__(self, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        self.samples = MAX_WINDOW_SECONDS * sample_rate
        filters = librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=n_mels)
        self.register_buffer("filters", torch.from_numpy(filters), persistent=False)  # (n_mels, n_fft // 2 + 1)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        lengths = _check_waveforms(waveform, lengths).clamp_max(self.samples)
        waveform = waveform.float()[:, : self.samples] * lengths_to_mask(lengths, min(waveform.shape[1], self.samples))
        waveform = nn.functional.pad(waveform, (0, self.samples - waveform.shape[1]))  # (B, 30 s)
        stft = torch.stft(waveform, N_FFT, HOP_LENGTH, window=self.window, return_complex=True)
        power = stft[..., :-1].abs() ** 2  # (B, n_fft // 2 + 1, 3000)
        log_spec = (self.filters @ power).clamp_min(LOG_FLOOR).log10()  # (B, n_mels, 3000)
        loudest = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, loudest - WHISPER_RANGE)
        frames = (lengths // HOP_LENGTH + 1).clamp_max(log_spec.shape[-1])
        return (log_spec + WHISPER_SHIFT) / WHISPER_SHIFT, frames


class SpecAugment(nn.Module):
    """SpecAugment (Park et al. 2019) on log-mel (B, n_mels, frames): frequency and time masks.

    Active only in training mode (identity in eval). Each example gets its own masks
    (torchaudio's iid_masks); masked cells are set to 0, the mean of normalized features.
    ``max_time_fraction`` caps a time mask's width at that fraction of the padded frames.
    """

    def __init__(
        self,
        num_freq_masks: int = NUM_FREQ_MASKS,
        freq_mask_width: int = FREQ_MASK_WIDTH,
        num_time_masks: int = NUM_TIME_MASKS,
        time_mask_width: int = TIME_MASK_WIDTH,
        max_time_fraction: float = 1.0,
    ):
        super().__init__()
        self.freq_masks = nn.ModuleList(
            FrequencyMasking(freq_mask_width, iid_masks=True) for _ in range(num_freq_masks)
        )
        self.time_masks = nn.ModuleList(
            TimeMasking(time_mask_width, iid_masks=True, p=max_time_fraction) for _ in range(num_time_masks)
        )

    def forward(self, features: Tensor) -> Tensor:
        """features (B, n_mels, frames) -> same shape, masked when training."""
        if not self.training:
            return features
        for mask in [*self.freq_masks, *self.time_masks]:
            features = mask(features)
        return features


class AudioFeatures(nn.Module):
    """(B, S) waveforms + (B,) sample lengths -> (B, n_mels, frames) normalized log-mel + (B,) frame lengths.

    The STFT and log run in float32 outside any autocast, so that training (bf16 included),
    validation and transcription see the same features; SpecAugment applies in training mode only.

    Args:
        n_mels: mel bins (the encoder's ``info.n_mels``).
        spec_augment: keyword arguments of ``SpecAugment`` (None: its defaults).
            ``{"num_freq_masks": 0, "num_time_masks": 0}`` turns it off.
        log_mel: "normalized" (``LogMelFrontend``) or "whisper" (``WhisperLogMel``): the checkpoint header's
            ``AudioPreprocessing.log_mel``, so that training and inference compute the same features.
    """

    def __init__(self, n_mels: int = N_MELS, spec_augment: dict[str, Any] | None = None, log_mel: str = "normalized"):
        super().__init__()
        if log_mel not in LOG_MELS:
            raise ValueError(f"log_mel must be one of {', '.join(LOG_MELS)}, not {log_mel!r}")
        self.frontend = LogMelFrontend(n_mels) if log_mel == "normalized" else WhisperLogMel(n_mels)
        self.spec_augment = SpecAugment(**(spec_augment or {}))

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        with torch.autocast(waveforms.device.type, enabled=False):
            features, frame_lengths = self.frontend(waveforms.float(), lengths)
        return self.spec_augment(features), frame_lengths
