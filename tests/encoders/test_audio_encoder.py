"""AudioTransformerEncoder: shapes, masks, padding invariance, long inputs, registry entries."""

from __future__ import annotations

import pytest
import torch
from encoder_contract import PaddedEncoderContract

from multimodal_s2s.encoders.audio_transformer import AudioTransformerEncoder
from multimodal_s2s.errors import InputError
from multimodal_s2s.preprocessing.audio import MAX_WINDOW_FRAMES, N_MELS
from multimodal_s2s.registry import encoder_entry, list_encoders
from multimodal_s2s.types import Emits, Modality

FRONTENDS = ("conv", "patch")
TINY = {"d_model": 32, "num_layers": 1, "num_heads": 2}


def _tiny(frontend: str) -> AudioTransformerEncoder:
    torch.manual_seed(0)
    return encoder_entry("audio_transformer_tiny").factory(frontend=frontend, **TINY).eval()


def test_registered_sizes():
    names = {"audio_transformer_tiny", "audio_transformer_small", "audio_transformer_base"}
    assert names <= set(list_encoders(Modality.AUDIO))
    for name in names:
        entry = encoder_entry(name)
        assert entry.emits == {Emits.SEQUENCE} and entry.modality == Modality.AUDIO
    tiny = encoder_entry("audio_transformer_tiny").factory()
    assert tiny.info.out_dim == 64 and tiny.info.n_mels == N_MELS and len(tiny.blocks) == 2


def test_kwargs_override_sizes():
    encoder = encoder_entry("audio_transformer_small").factory(n_mels=40, d_model=48, num_layers=1, ff_dim=96)
    assert encoder.info.n_mels == 40 and encoder.info.out_dim == 48
    assert len(encoder.blocks) == 1 and encoder.blocks[0].mlp.fc1.out_features == 96


def test_conv_frontend_shapes_and_lengths():
    encoder = _tiny("conv")
    out = encoder.encode_sequence(torch.randn(2, N_MELS, 100), torch.tensor([100, 40]))
    # Two 3x3 stride-2 convolutions: 100 -> 49 -> 24 rows, 40 -> 19 -> 9.
    assert out.memory.shape == (2, 24, 32)
    assert out.mask.sum(1).tolist() == [24, 9]
    assert out.memory[1, 9:].abs().max() == 0


def test_eightfold_subsampling_halves_the_rows_again():
    encoder = AudioTransformerEncoder(subsampling=8, **TINY)
    out = encoder.encode_sequence(torch.randn(2, N_MELS, 100), torch.tensor([100, 40]))
    # Three 3x3 stride-2 convolutions: 100 -> 49 -> 24 -> 11 rows, 40 -> 19 -> 9 -> 4.
    assert out.memory.shape == (2, 11, 32) and out.mask.sum(1).tolist() == [11, 4]
    with pytest.raises(InputError, match="at least 15 frames"):
        encoder.encode_sequence(torch.randn(1, N_MELS, 14))


def test_conv_frontend_channels_can_be_narrower_than_the_model():
    encoder = AudioTransformerEncoder(conv_channels=8, **TINY)
    assert encoder.frontend.convs[2].weight.shape == (8, 8, 3, 3)
    assert encoder.encode_sequence(torch.randn(2, N_MELS, 100)).memory.shape == (2, 24, 32)


def test_patch_frontend_rows_are_freq_time_pairs():
    encoder = _tiny("patch")
    out = encoder.encode_sequence(torch.randn(2, N_MELS, 95), torch.tensor([95, 31]))
    freq_patches, time_patches = (N_MELS - 16) // 10 + 1, 10  # 7 frequency patches, ceil(95 / 10) time patches
    assert out.memory.shape == (2, freq_patches * time_patches, 32)
    mask = out.mask.view(2, freq_patches, time_patches)
    # Time patch t starts at frame 10 t: patches 0..3 start inside 31 frames, whatever the frequency patch.
    assert mask[0].all() and mask[1, :, :4].all() and not mask[1, :, 4:].any()


class TestAudioEncoderContract(PaddedEncoderContract):
    ENCODERS = {frontend: ("audio_transformer_tiny", {"frontend": frontend, **TINY}) for frontend in FRONTENDS}
    LENGTHS = (57, 117)

    def make_input(self, name, args, length):
        return torch.randn(1, N_MELS, length)

    def make_padding(self, name, args, length):
        return 50 * torch.randn(1, N_MELS, length)  # padding need not be zeros

    def valid_rows(self, name, args, lengths, rows):
        if args["frontend"] == "conv":  # two 3x3 stride-2 convolutions
            return [((n - 3) // 2 - 1) // 2 for n in lengths.tolist()]
        return [7 * -(-n // 10) for n in lengths.tolist()]  # 7 frequency patches x ceil(frames / 10) time patches

    def bad_inputs(self, name, args):
        if args["frontend"] == "conv":
            return [(torch.randn(2, N_MELS, 20), torch.tensor([20, 5]), "at least 7 frames")]
        return []  # a patch takes any number of frames

    def declared_bad_inputs(self, name, args):
        wrong_bins = (torch.randn(2, 40, 30), None, f"must have {N_MELS} mel bins")
        return [*super().declared_bad_inputs(name, args), wrong_bins]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_thirty_seconds_runs_with_tiny(frontend):
    encoder = encoder_entry("audio_transformer_tiny").factory(frontend=frontend).eval()
    with torch.no_grad():
        out = encoder.encode_sequence(torch.randn(1, N_MELS, MAX_WINDOW_FRAMES))
    assert out.mask.all() and torch.isfinite(out.memory).all()
    expected_rows = {"conv": (MAX_WINDOW_FRAMES - 1) // 2 // 2, "patch": 7 * MAX_WINDOW_FRAMES // 10}
    assert out.memory.shape == (1, expected_rows[frontend], 64)


def test_gradients_reach_the_frontend():
    encoder = _tiny("conv").train()
    out = encoder.encode_sequence(torch.randn(2, N_MELS, 30), torch.tensor([30, 20]))
    out.memory[out.mask].sum().backward()
    assert encoder.frontend.convs[0].weight.grad.abs().sum() > 0


def test_patch_frontend_zero_pads_a_short_input():
    out = _tiny("patch").encode_sequence(torch.randn(1, N_MELS, 3))  # one short patch, zero-padded
    assert out.mask.sum() == 7


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="frontend must be one of conv, patch"):
        AudioTransformerEncoder(frontend="mfcc")
    with pytest.raises(ValueError, match="n_mels >= 16"):
        AudioTransformerEncoder(n_mels=8, frontend="patch")
    with pytest.raises(ValueError, match="conv_channels and subsampling apply to the conv frontend only"):
        AudioTransformerEncoder(frontend="patch", conv_channels=32)
    with pytest.raises(ValueError, match="subsampling must be one of 4, 8"):
        AudioTransformerEncoder(subsampling=2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_frontend_and_encoder_on_cuda_match_cpu():
    from multimodal_s2s.preprocessing.audio import LogMelFrontend

    waveform, lengths = torch.randn(2, 8000), torch.tensor([8000, 5000])
    frontend = LogMelFrontend()
    features, frames = frontend(waveform, lengths)
    features_gpu, frames_gpu = frontend.cuda()(waveform.cuda(), lengths)
    torch.testing.assert_close(features_gpu.cpu(), features, atol=1e-3, rtol=1e-3)
    for frontend_name in FRONTENDS:
        encoder = _tiny(frontend_name)
        expected = encoder.encode_sequence(features, frames)
        actual = encoder.cuda().encode_sequence(features_gpu, frames_gpu)
        assert torch.equal(actual.mask.cpu(), expected.mask)
        torch.testing.assert_close(actual.memory.cpu(), expected.memory, atol=1e-3, rtol=1e-3)


def test_whisper_frontend_reads_30_seconds_and_attends_to_every_row():
    """whisper's fixed input: frames cut or zero-padded to 3000, 1500 valid rows, whisper's own sinusoids."""
    torch.manual_seed(0)
    encoder = AudioTransformerEncoder(frontend="whisper", norm_eps=1e-5, dropout=0.0, **TINY).eval()
    short = torch.randn(1, N_MELS, 300)
    padded = torch.nn.functional.pad(short, (0, MAX_WINDOW_FRAMES - 300))
    out = encoder.encode_sequence(short, torch.tensor([300]))
    assert out.memory.shape == (1, 1500, 32) and bool(out.mask.all()) and encoder.info.frames_per_row == 2
    torch.testing.assert_close(out.memory, encoder.encode_sequence(padded).memory)
    longer = encoder.encode_sequence(torch.cat([padded, torch.randn(1, N_MELS, 50)], -1)).memory
    torch.testing.assert_close(longer, out.memory)
    table = encoder.frontend.positions
    assert table.shape == (1500, 32) and torch.equal(table[0, 16:], torch.ones(16))
    assert encoder.blocks[0].norm1.eps == 1e-5 and _tiny("conv").blocks[0].norm1.eps == 1e-6
