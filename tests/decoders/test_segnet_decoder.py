"""The SegNet decoder over every image encoder, built from EncoderInfo alone, and scatter-based unpooling."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from decoder_contract import DenseDecoderContract
from torch import nn

import multimodal_s2s
from multimodal_s2s.decoders.segnet import SegNetDecoder
from multimodal_s2s.layers.pooling import max_unpool2d
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Modality


def _conv_widths(module: nn.Module) -> list[tuple[int, int]]:
    return [(conv.in_channels, conv.out_channels) for conv in module.modules() if isinstance(conv, nn.Conv2d)]


@pytest.mark.parametrize("size", [(32, 32), (36, 50)])
def test_max_unpool2d_equals_torch(size):
    x = torch.randn(2, 3, *size)
    pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    expected = F.max_unpool2d(pooled, indices, 2, 2, output_size=size)
    assert torch.equal(max_unpool2d(pooled, indices, size), expected)
    assert torch.equal(max_unpool2d(pooled, indices, x.shape), expected)  # a full shape works too


def test_segnet_pair_exports_to_onnx():
    onnx = pytest.importorskip("onnx")  # not a dependency: checked where it is installed
    model = multimodal_s2s.create_model("segnet_basic", "segnet", encoder_args={"channels": 8}, num_classes=3).eval()
    exported = io.BytesIO()
    torch.onnx.export(model, (torch.randn(1, 3, 36, 50),), exported, dynamo=False)
    assert "ScatterElements" in {node.op_type for node in onnx.load_from_string(exported.getvalue()).graph.node}


def test_max_unpool2d_refuses_mismatched_indices():
    with pytest.raises(ValueError, match="indices shape"):
        max_unpool2d(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 2, dtype=torch.long), (6, 6))


class TestSegNetContract(DenseDecoderContract):
    DECODER = ("segnet", {})


def test_segnet_pair_restores_odd_sizes_through_the_indices():
    model = multimodal_s2s.create_model("segnet_basic", "segnet", encoder_args={"channels": 8}, num_classes=3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 36, 50)).shape == (1, 3, 36, 50)


def test_mirrored_decoder_steps_widths_down_as_in_the_paper():
    info = EncoderInfo(
        modality=Modality.IMAGE,
        emits=frozenset({Emits.FEATURE_MAPS, Emits.POOL_INDICES}),
        channels=(64, 128, 256, 512, 512),
        reductions=(2, 4, 8, 16, 32),
        stage_depths=(2, 2, 3, 3, 3),
    )
    decoder = SegNetDecoder(info)
    assert _conv_widths(decoder) == [
        *[(512, 512)] * 3,
        *[(512, 512)] * 2 + [(512, 256)],
        *[(256, 256)] * 2 + [(256, 128)],
        (128, 128), (128, 64),
        (64, 64), (64, 64),
    ]
    assert (decoder.out_channels, decoder.out_reduction) == (64, 1)


def test_mirrored_decoder_uses_only_the_deepest_map_and_needs_the_indices():
    model = multimodal_s2s.create_model("segnet_basic", "segnet", encoder_args={"channels": 8}, num_classes=3).eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = model.encoder.encode_feature_maps(images)
        logits = model.decoder(maps, (32, 32))
        zeroed = [torch.zeros_like(f) for f in maps.features[:-1]] + maps.features[-1:]
        shallow_zeroed = FeatureMaps(zeroed, maps.pool_indices, maps.pool_input_sizes)
        torch.testing.assert_close(model.decoder(shallow_zeroed, (32, 32)), logits)
        with pytest.raises(ValueError, match="pool_indices"):
            model.decoder(FeatureMaps(maps.features), (32, 32))


def _info_without_indices(channels, reductions) -> EncoderInfo:
    return EncoderInfo(Modality.IMAGE, frozenset({Emits.FEATURE_MAPS}), channels=channels, reductions=reductions)


def test_interpolation_fallback_halves_widths_to_a_floor_until_full_resolution():
    decoder = SegNetDecoder(_info_without_indices((64, 128, 256, 512), (4, 8, 16, 32)))
    assert _conv_widths(decoder) == [(512, 256), (256, 128), (128, 64), (64, 32), (32, 32)]
    maps = FeatureMaps([torch.randn(1, 512, 2, 2)])  # (36, 50) / 32, rounded up
    assert decoder(maps, (36, 50)).shape == (1, 32, 36, 50)


def test_interpolation_fallback_with_a_reduction_that_is_no_power_of_two():
    decoder = SegNetDecoder(_info_without_indices((48,), (14,)))  # e.g. a ViT with 14-pixel patches
    assert len(_conv_widths(decoder)) == 4  # 14 ~ 2^4 upsampling steps (the head classifies)
    assert decoder(FeatureMaps([torch.randn(2, 48, 2, 3)]), (28, 42)).shape == (2, 32, 28, 42)


def test_decoder_refuses_an_encoder_without_feature_maps():
    info = EncoderInfo(Modality.AUDIO, frozenset({Emits.SEQUENCE}), out_dim=16)
    with pytest.raises(ValueError, match="feature-map channels"):
        SegNetDecoder(info)
