"""Audio spectrogram Transformer encoder: log-mel (B, n_mels, frames) -> SequenceOutput.

Two frontends turn frames into rows before a pre-LN Transformer:

- ``"conv"``: convolutional subsampling as in ESPnet/Conformer (two 3x3 stride-2 Conv2d
  + ReLU, 4x fewer frames; or three, 8x, as in NeMo's Fast Conformer), flattened over
  frequency and projected to d_model; sinusoidal positions over time.
- ``"patch"``: AST-style (Gong et al. 2021) overlapping 16x16 time-frequency patches with
  stride 10 in both axes; one row per (frequency patch, time patch) pair, frequency-major;
  a learned embedding of the frequency-patch index plus sinusoidal positions over the
  time-patch index.
- ``"whisper"``: whisper's (Radford et al. 2022): a fixed 30 s input (log-mel padded or cut to 3000
  frames), two 1-D convolutions over time (kernel 3, the second stride 2) with GELU, and whisper's own
  sinusoid table (``whisper_sinusoids``, a buffer that imported weights overwrite) over its 1500 rows,
  all of which are attended to, as whisper does (the mask is all True).

The Transformer is a stack of timm's pre-LN ViT blocks (attention through PyTorch's
scaled_dot_product_attention, padded rows masked by an additive -inf bias on the keys)
and a final LayerNorm. Sinusoidal time positions have no table to outgrow, so inputs longer than any seen in
training (30 s = 3000 frames and beyond) work. Padded frames never change valid rows.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from timm.layers import LayerNorm as TimmLayerNorm
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from multimodal_s2s.encoders.base import Encoder
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.attention import attention_bias
from multimodal_s2s.layers.masks import conv_output_lengths, lengths_to_mask
from multimodal_s2s.layers.positional import SinusoidalPositions, sinusoidal_positions
from multimodal_s2s.preprocessing.audio import N_MELS
from multimodal_s2s.registry import register_encoder
from multimodal_s2s.types import Emits, EncoderInfo, Modality, SequenceOutput

CONV_KERNEL, CONV_STRIDE = 3, 2
SUBSAMPLING_FACTORS = {4: 2, 8: 3}  # time subsampling of the conv frontend -> its stride-2 convolutions
PATCH_SIZE, PATCH_STRIDE = 16, 10  # AST: 16x16 patches, overlap 6 in both axes
FF_MULTIPLIER = 4
DEFAULT_DROPOUT = 0.1
FRONTENDS = ("conv", "patch", "whisper")
WHISPER_ROWS = 1500  # whisper's n_audio_ctx: 30 s of 100 frames per second, halved by its strided conv
#: LayerNorm epsilon of the blocks: timm's (1e-6) unless given (whisper's is PyTorch's 1e-5).
TIMM_NORM_EPS = 1e-6


def min_conv_size(num_convs: int) -> int:
    """The fewest frames (or mel bins) that ``num_convs`` 3x3 stride-2 convolutions turn into one row."""
    return 2 ** (num_convs + 1) - 1


class ConvSubsampling(nn.Module):
    """(B, n_mels, frames) + lengths (B,) -> rows (B, T', d_model) + row mask (B, T'), T' ~ frames / factor.

    ``factor`` 4: two 3x3 stride-2 convolutions (ESPnet, Conformer); 8: three (NeMo's Fast Conformer),
    half the rows for every Transformer layer. ``channels`` of the convolutions: d_model as in ESPnet by
    default; a convolution after the first costs channels^2 per output, so a narrower one (32, 64)
    is several times cheaper on a CPU.
    """

    def __init__(self, n_mels: int, d_model: int, channels: int | None = None, factor: int = 4):
        super().__init__()
        if factor not in SUBSAMPLING_FACTORS:
            raise ValueError(f"subsampling must be one of {', '.join(map(str, SUBSAMPLING_FACTORS))}, got {factor}")
        channels = channels or d_model
        self.num_convs = SUBSAMPLING_FACTORS[factor]
        layers = [nn.Conv2d(1, channels, CONV_KERNEL, CONV_STRIDE), nn.ReLU()]
        for _ in range(self.num_convs - 1):
            layers += [nn.Conv2d(channels, channels, CONV_KERNEL, CONV_STRIDE), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.min_size = min_conv_size(self.num_convs)
        reduced_mels = n_mels
        for _ in range(self.num_convs):
            reduced_mels = (reduced_mels - CONV_KERNEL) // CONV_STRIDE + 1
        self.project = nn.Linear(channels * reduced_mels, d_model)
        self.positions = SinusoidalPositions(d_model)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        for _ in range(self.num_convs):
            lengths = conv_output_lengths(lengths, CONV_KERNEL, CONV_STRIDE)
        return lengths

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if not torch.compiler.is_compiling() and int(lengths.min()) < self.min_size:  # not inside torch.export
            raise InputError(
                f"the conv frontend needs at least {self.min_size} frames per utterance, got lengths {lengths.tolist()}"
            )
        # Valid outputs see only valid frames: the convolutions do not pad along time.
        maps = self.convs(features.transpose(1, 2).unsqueeze(1))  # (B, channels, T', F')
        rows = self.project(maps.permute(0, 2, 1, 3).flatten(2))  # (B, T', d)
        return self.positions(rows), lengths_to_mask(self.output_lengths(lengths), rows.shape[1])


class PatchEmbedding(nn.Module):
    """(B, n_mels, frames) + lengths (B,) -> rows (B, F_p * T_p, d_model) + row mask (B, F_p * T_p).

    Time patch t covers frames [10t, 10t + 16); it is valid when it starts inside the
    utterance (10t < length). Frames past each length are zeroed and the time axis is
    zero-padded so the last valid patch exists, so a patch sees the same values alone
    or in a padded batch.
    """

    def __init__(self, n_mels: int, d_model: int):
        super().__init__()
        self.freq_patches = (n_mels - PATCH_SIZE) // PATCH_STRIDE + 1
        self.project = nn.Conv2d(1, d_model, PATCH_SIZE, PATCH_STRIDE)
        self.freq_embedding = nn.Embedding(self.freq_patches, d_model)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        frames = features.shape[-1]
        time_patches = _ceil_div(frames, PATCH_STRIDE)  # patches starting inside the frames
        needed_frames = (time_patches - 1) * PATCH_STRIDE + PATCH_SIZE
        frame_mask = lengths_to_mask(lengths, frames).unsqueeze(1)  # (B, 1, frames)
        padded = nn.functional.pad(features * frame_mask, (0, needed_frames - frames))
        patches = self.project(padded.unsqueeze(1)).permute(0, 2, 3, 1)  # (B, F_p, T_p, d)
        time_index = torch.arange(time_patches, device=features.device)
        time_positions = sinusoidal_positions(time_index, patches.shape[-1]).to(patches.dtype)  # (T_p, d)
        patches = patches + self.freq_embedding.weight[:, None, :] + time_positions  # (B, F_p, T_p, d)
        rows = patches.flatten(1, 2)  # (B, F_p * T_p, d), row = f * T_p + t
        valid_time = lengths_to_mask(_ceil_div(lengths, PATCH_STRIDE), time_patches)  # (B, T_p)
        return rows, valid_time.repeat(1, self.freq_patches)  # (B, F_p * T_p)


def whisper_sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """whisper's position table (length, channels): sin half then cos half, timescales spaced over
    channels // 2 - 1 steps (the suite's ``sinusoidal_positions`` spaces them over channels // 2)."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([scaled_time.sin(), scaled_time.cos()], dim=1)


class WhisperFrontend(nn.Module):
    """(B, n_mels, frames) + lengths (B,) -> rows (B, rows, d_model) + an all-True mask (B, rows).

    whisper's fixed input: the log-mel is cut or zero-padded to ``2 * rows`` frames (whisper's
    ``pad_or_trim``; the whisper log-mel of ``preprocessing.audio`` already covers 30 s), then conv1
    (n_mels -> d, kernel 3, padding 1) + GELU, conv2 (d -> d, kernel 3, stride 2, padding 1) + GELU, plus
    the position table. Every row is valid: whisper attends to the padding of its 30 s window too.
    """

    def __init__(self, n_mels: int, d_model: int, rows: int = WHISPER_ROWS):
        super().__init__()
        if d_model % 2 or d_model < 4:
            raise ValueError(f"the whisper frontend needs an even d_model >= 4, got {d_model}")
        self.frames = 2 * rows
        self.conv1 = nn.Conv1d(n_mels, d_model, CONV_KERNEL, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, CONV_KERNEL, stride=CONV_STRIDE, padding=1)
        self.register_buffer("positions", whisper_sinusoids(rows, d_model))

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        features = nn.functional.pad(features[..., : self.frames], (0, max(self.frames - features.shape[-1], 0)))
        maps = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(features))))  # (B, d, rows)
        rows = maps.transpose(1, 2) + self.positions.to(maps.dtype)  # (B, rows, d)
        return rows, torch.ones(rows.shape[:2], dtype=torch.bool, device=rows.device)


def _ceil_div(numerator: int | Tensor, denominator: int) -> int | Tensor:
    return -(-numerator // denominator)


class AudioTransformerEncoder(Encoder):
    """log-mel (B, n_mels, frames) + lengths (B,) -> SequenceOutput(memory (B, T, d_model), mask (B, T)).

    Args:
        n_mels: mel bins of the input (declared as ``info.n_mels``; checked by EncoderDecoder.encode).
        d_model, num_layers, num_heads: Transformer size.
        ff_dim: feed-forward width (default 4 * d_model).
        dropout: dropout on the frontend's rows and in the Transformer blocks (attention, projections).
        frontend: ``"conv"`` (time subsampling by ``subsampling``: 4 gives T = ((frames - 1) // 2 - 1) // 2
            and needs at least 7 frames and 7 mel bins, 8 one more halving and 15) or ``"patch"`` (AST
            patches: T = F_p * ceil(frames / 10), F_p = (n_mels - 16) // 10 + 1).
        conv_channels: channels of the conv frontend (default d_model).
        subsampling: time subsampling of the conv frontend, 4 or 8.
        audio_rows: the rows of the whisper frontend (whisper's n_audio_ctx, 1500 = 30 s).
        norm_eps: epsilon of the blocks' LayerNorms (None: timm's 1e-6; whisper's weights want 1e-5).
    """

    def __init__(
        self,
        n_mels: int = N_MELS,
        d_model: int = 256,
        num_layers: int = 6,
        num_heads: int = 4,
        ff_dim: int | None = None,
        dropout: float = DEFAULT_DROPOUT,
        frontend: str = "conv",
        conv_channels: int | None = None,
        subsampling: int = 4,
        audio_rows: int = WHISPER_ROWS,
        norm_eps: float | None = None,
    ):
        super().__init__()
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {', '.join(FRONTENDS)}, not {frontend!r}")
        conv_mels = min_conv_size(SUBSAMPLING_FACTORS.get(subsampling, 2))
        min_mels = {"conv": conv_mels, "patch": PATCH_SIZE}.get(frontend, 1)
        if n_mels < min_mels:
            raise ValueError(f"the {frontend} frontend needs n_mels >= {min_mels}, got {n_mels}")
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by {num_heads} heads")
        if frontend == "conv":
            self.frontend = ConvSubsampling(n_mels, d_model, conv_channels, subsampling)
        elif conv_channels is not None or subsampling != 4:
            raise ValueError("conv_channels and subsampling apply to the conv frontend only")
        elif frontend == "whisper":
            self.frontend = WhisperFrontend(n_mels, d_model, audio_rows)
        else:
            self.frontend = PatchEmbedding(n_mels, d_model)
        self.dropout = nn.Dropout(dropout)
        mlp_ratio = (ff_dim or FF_MULTIPLIER * d_model) / d_model
        norm = partial(TimmLayerNorm, eps=TIMM_NORM_EPS if norm_eps is None else norm_eps)
        self.blocks = nn.ModuleList(
            Block(d_model, num_heads, mlp_ratio, qkv_bias=True, proj_drop=dropout, attn_drop=dropout, norm_layer=norm)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.info = EncoderInfo(
            modality=Modality.AUDIO,
            emits=frozenset({Emits.SEQUENCE}),
            out_dim=d_model,
            n_mels=n_mels,
            frames_per_row={"conv": subsampling, "whisper": CONV_STRIDE}.get(frontend),  # patch rows: frequency-major
        )

    def encode_sequence(self, features: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """features (B, n_mels, frames) float, lengths (B,) frames (None = all) -> SequenceOutput."""
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[-1], dtype=torch.long)
        lengths = lengths.to(features.device)
        rows, mask = self.frontend(features, lengths)  # (B, T, d), (B, T)
        bias = attention_bias(mask, rows.dtype)[:, None, None, :]  # (B, 1, 1, T): -inf on padded keys
        memory = self.dropout(rows)
        for block in self.blocks:
            memory = block(memory, attn_mask=bias)
        memory = self.norm(memory)  # (B, T, d)
        return SequenceOutput(memory=torch.where(mask.unsqueeze(-1), memory, 0.0), mask=mask)  # padded rows = 0

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        return self.encode_sequence(features, lengths)


_SIZES = {
    "tiny": {"d_model": 64, "num_layers": 2, "num_heads": 4},
    "small": {"d_model": 256, "num_layers": 6, "num_heads": 4},
    "base": {"d_model": 512, "num_layers": 12, "num_heads": 8},
}
_AUDIO = {"modality": Modality.AUDIO, "emits": {Emits.SEQUENCE}}


@register_encoder("audio_transformer_tiny", **_AUDIO)
def audio_transformer_tiny(**overrides) -> AudioTransformerEncoder:
    """d_model 64, 2 layers, 4 heads; overrides: the arguments of AudioTransformerEncoder."""
    return AudioTransformerEncoder(**{**_SIZES["tiny"], **overrides})


@register_encoder("audio_transformer_small", **_AUDIO)
def audio_transformer_small(**overrides) -> AudioTransformerEncoder:
    """d_model 256, 6 layers, 4 heads; same overrides as audio_transformer_tiny."""
    return AudioTransformerEncoder(**{**_SIZES["small"], **overrides})


@register_encoder("audio_transformer_base", **_AUDIO)
def audio_transformer_base(**overrides) -> AudioTransformerEncoder:
    """d_model 512, 12 layers, 8 heads; same overrides as audio_transformer_tiny."""
    return AudioTransformerEncoder(**{**_SIZES["base"], **overrides})
