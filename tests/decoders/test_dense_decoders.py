"""The skip-connection (unet) and mask-Transformer decoders over every image encoder: shapes at odd
sizes, widths from EncoderInfo alone, every map used, per-class attention maps, ONNX parity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from checkpoint_helpers import SEGMENTATION_CLASSES, random_checkpoint, segmentation_header
from decoder_contract import IMAGE_ENCODERS, DenseDecoderContract
from PIL import Image
from torch import nn

import multimodal_s2s
from multimodal_s2s.apps.cli import main
from multimodal_s2s.apps.export import TOLERANCE, export_onnx, verify_onnx
from multimodal_s2s.decoders.dense import SegmentationHead
from multimodal_s2s.decoders.mask_transformer import MaskTransformerDecoder
from multimodal_s2s.decoders.unet import UNetDecoder
from multimodal_s2s.encoders.vit import evenly_spaced_blocks
from multimodal_s2s.errors import InputError
from multimodal_s2s.lit.segmentation import SegmentationModule
from multimodal_s2s.models import ModelConfig
from multimodal_s2s.registry import decoder_entry
from multimodal_s2s.types import Emits, EncoderInfo, FeatureMaps, Modality

NUM_CLASSES = 5
DENSE_DECODERS = {"unet": {}, "mask_transformer": {"d_model": 32, "num_heads": 2}}
TINY_VIT = dict(IMAGE_ENCODERS)["vit_tiny"]
RECIPES = Path(__file__).resolve().parents[2] / "tasks" / "segmentation"


def _model(encoder: str, decoder: str, encoder_args: dict | None = None) -> nn.Module:
    args = dict(IMAGE_ENCODERS)[encoder] if encoder_args is None else encoder_args
    return multimodal_s2s.create_model(encoder, decoder, args, DENSE_DECODERS[decoder], num_classes=NUM_CLASSES)


def _info(channels, reductions) -> EncoderInfo:
    return EncoderInfo(Modality.IMAGE, frozenset({Emits.FEATURE_MAPS}), channels=channels, reductions=reductions)


def _conv_widths(module: nn.Module) -> list[tuple[int, int]]:
    return [(conv.in_channels, conv.out_channels) for conv in module.modules() if isinstance(conv, nn.Conv2d)]


class TestUNetContract(DenseDecoderContract):
    DECODER = ("unet", DENSE_DECODERS["unet"])


class TestMaskTransformerContract(DenseDecoderContract):
    DECODER = ("mask_transformer", DENSE_DECODERS["mask_transformer"])


@pytest.mark.parametrize("decoder", sorted(DENSE_DECODERS))
def test_vit_pairs_refuse_sizes_not_divisible_by_the_patch(decoder):
    with pytest.raises(InputError, match="divisible by the patch size 8"):
        _model("vit_tiny", decoder)(torch.randn(1, 3, 36, 40))


def test_unet_widths_come_from_channels_and_reductions():
    resnet18 = _info((64, 64, 128, 256, 512), (2, 4, 8, 16, 32))
    decoder = UNetDecoder(resnet18)
    stages = [(stage.reduce[0].out_channels, stage.fuse[0].in_channels) for stage in decoder.stages]
    assert stages == [(256, 256 + 256), (128, 128 + 128), (64, 64 + 64), (32, 32 + 64)]  # smp's (256, 128, 64, 32)
    assert len(decoder.refine) == 0 and (decoder.out_channels, decoder.out_reduction) == (32, 2)
    sizes = [(23, 30), (12, 15), (6, 8), (3, 4)]  # timm's resnet18 maps of a 45 x 60 image, /2 to /32
    maps = FeatureMaps([torch.randn(1, c, *size) for c, size in zip(resnet18.channels[1:], sizes, strict=True)])
    features = decoder(FeatureMaps([torch.randn(1, 64, 23, 30), *maps.features]), (45, 60))
    assert features.shape == (1, 32, 23, 30)
    head = SegmentationHead.for_decoder(decoder, num_classes=11, makes_class_scores=False)
    assert _conv_widths(head) == [(32, 11)] and head(features, (45, 60)).shape == (1, 11, 45, 60)


def test_unet_fuses_same_reduction_maps_then_refines_to_the_logit_reduction():
    vit = _info((48,) * 3, (16,) * 3)  # three blocks of a ViT with 16-pixel patches
    decoder = UNetDecoder(vit, min_channels=8)
    assert not any(stage.upsample for stage in decoder.stages)
    assert _conv_widths(decoder.refine) == [(48, 24), (24, 12), (12, 8)]  # /8, /4, /2
    assert (decoder.out_channels, decoder.out_reduction) == (8, 2)
    maps = FeatureMaps([torch.randn(2, 48, 2, 3) for _ in range(3)])
    assert decoder(maps, (32, 48)).shape == (2, 8, 16, 24)


@pytest.mark.parametrize("encoder", ["cnn_tiny", "segnet_basic", "vit_tiny"])
def test_unet_uses_every_feature_map(encoder):
    model = _model(encoder, "unet").eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = model.encoder.encode_feature_maps(images)
        logits = model.decoder(maps, (32, 32))
        for index in range(len(maps.features)):
            changed = list(maps.features)
            changed[index] = torch.randn_like(changed[index])
            assert not torch.allclose(model.decoder(FeatureMaps(changed), (32, 32)), logits), f"map {index} unused"


def test_unet_refuses_maps_it_was_not_built_for():
    decoder = UNetDecoder(_info((8, 16), (2, 4)))
    with pytest.raises(ValueError, match="built for 2 feature maps"):
        decoder(FeatureMaps([torch.randn(1, 16, 4, 4)]), (16, 16))
    with pytest.raises(ValueError, match="shallow to deep"):
        UNetDecoder(_info((16, 8), (4, 2)))


def test_mask_transformer_class_attention_maps():
    model = _model("vit_tiny", "mask_transformer").eval()
    images = torch.randn(2, 3, 24, 40)  # a 3 x 5 patch grid
    with torch.no_grad():
        maps = model.encoder.encode_feature_maps(images)
        attention = model.decoder.class_attention(maps)
    assert attention.shape == (2, NUM_CLASSES, 3, 5)
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(dim=(-2, -1)), torch.ones(2, NUM_CLASSES))
    assert not torch.allclose(attention[:, 0], attention[:, 1])  # each class attends in its own way


def test_mask_transformer_explicit_attention_path_equals_sdpa():
    model = _model("cnn_tiny", "mask_transformer").eval()
    with torch.no_grad():
        maps = model.encoder.encode_feature_maps(torch.randn(2, 3, 64, 96))
        with_weights, weights = model.decoder._masks(maps, need_weights=True)
        without, _ = model.decoder._masks(maps, need_weights=False)
    torch.testing.assert_close(with_weights, without, atol=1e-5, rtol=1e-4)
    assert weights.shape == (2, 2, 2 * 3 + NUM_CLASSES, 2 * 3 + NUM_CLASSES)


def test_mask_transformer_defaults_follow_segmenter():
    decoder = MaskTransformerDecoder(_info((64, 192), (8, 16)), num_classes=11)
    assert decoder.class_embeddings.shape == (1, 11, 192)
    assert len(decoder.blocks) == 2 and decoder.blocks[0].attention.num_heads == 3
    assert (decoder.out_channels, decoder.out_reduction) == (11, 16)
    assert decoder_entry("mask_transformer").makes_class_scores and not decoder_entry("unet").makes_class_scores
    with pytest.raises(ValueError, match="num_layers >= 1"):
        MaskTransformerDecoder(_info((64,), (8,)), num_classes=2, num_layers=0)
    with pytest.raises(ValueError, match="channels and reductions"):
        MaskTransformerDecoder(_info((64,), ()), num_classes=2)


def test_vit_declares_evenly_spaced_blocks_as_maps():
    assert evenly_spaced_blocks(12) == (2, 5, 8, 11) and evenly_spaced_blocks(2) == (0, 1)
    encoder = multimodal_s2s.create_model("vit_tiny", "unet", {**TINY_VIT, "depth": 3}, num_classes=2).encoder.eval()
    assert encoder.info.channels == (32,) * 3 and encoder.info.reductions == (8,) * 3
    images = torch.randn(1, 3, 24, 32)
    with torch.no_grad():
        maps = encoder.encode_feature_maps(images).features
        memory = encoder.encode_sequence(images).memory
    assert [tuple(m.shape) for m in maps] == [(1, 32, 3, 4)] * 3
    torch.testing.assert_close(maps[-1].flatten(2).transpose(1, 2), memory)  # the last map is the final output
    assert not torch.allclose(maps[0], maps[-1])


@pytest.mark.parametrize("blocks", [(0, 1), (2, 1, 2), (), (-1, 2)])
def test_vit_refuses_feature_blocks_that_do_not_end_at_the_last_block(blocks):
    encoder_args = {**TINY_VIT, "depth": 3, "feature_blocks": blocks}
    with pytest.raises(ValueError, match="feature_blocks must increase"):
        multimodal_s2s.create_model("vit_tiny", "unet", encoder_args, num_classes=2)


@pytest.mark.parametrize(
    ("encoder", "decoder", "size"),
    [
        ("cnn_tiny", "unet", (36, 50)),
        ("vit_tiny", "mask_transformer", (24, 40)),
        pytest.param("segnet_basic", "unet", (36, 50), marks=pytest.mark.slow),
        pytest.param("vit_tiny", "unet", (24, 40), marks=pytest.mark.slow),
        pytest.param("cnn_tiny", "mask_transformer", (36, 50), marks=pytest.mark.slow),
    ],
)
def test_onnx_export_matches_pytorch(tmp_path, encoder, decoder, size):
    pytest.importorskip("onnxruntime")
    model = _model(encoder, decoder).eval()
    path = tmp_path / f"{encoder}_{decoder}.onnx"
    export_onnx(model, torch.randn(2, 3, *size), path, {"mms2s.task": "segmentation"}, opset=18)
    other = (size[0] + 16, size[1] + 8)  # another size, still a multiple of the ViT's patch
    differences = verify_onnx(model, path, [torch.randn(2, 3, *size), torch.randn(1, 3, *other)])
    assert set(differences) == {(2, 3, *size), (1, 3, *other)}
    assert max(differences.values()) < TOLERANCE


@pytest.mark.parametrize("recipe", ["camvid_unet.yaml", "camvid_vit_mask.yaml"])
def test_camvid_recipes_build_their_model(recipe):
    config = yaml.safe_load((RECIPES / recipe).read_text())["model"]["init_args"]
    module = SegmentationModule(**config)  # the loss name and every key are accepted
    model = multimodal_s2s.create_model(
        config["encoder"], config["decoder"], config["encoder_args"], config["decoder_args"], num_classes=11
    ).eval()
    assert module.hparams.decoder == config["decoder"] in ("unet", "mask_transformer")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 48, 64)).shape == (1, 11, 48, 64)


@pytest.fixture(scope="module")
def segmenter_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Random-init segmentation checkpoints: a timm CNN + unet, a ViT + mask Transformer (32x48 inputs)."""
    folder = tmp_path_factory.mktemp("dense_checkpoints")
    header = segmentation_header()
    classes = header.model.num_classes
    models = {
        "unet": ModelConfig("cnn_tiny", "unet", dict(IMAGE_ENCODERS)["cnn_tiny"], {}, num_classes=classes),
        "mask_transformer": ModelConfig("vit_tiny", "mask_transformer", {**TINY_VIT, "img_size": [32, 48]},
                                        DENSE_DECODERS["mask_transformer"], num_classes=classes),
    }
    return {name: random_checkpoint(folder / f"{name}.ckpt", replace(header, model=model))
            for name, model in models.items()}


def test_segmenter_draws_each_classes_attention_from_a_mask_transformer(segmenter_checkpoints):
    segmenter = multimodal_s2s.Segmenter.from_checkpoint(segmenter_checkpoints["mask_transformer"], device="cpu")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8))
    plain, with_attention = segmenter([photo])[0], segmenter([photo], class_attention=True)[0]
    assert np.array_equal(plain.labels, with_attention.labels) and plain.class_attention is None
    attention = with_attention.class_attention  # (K, h, w) over the 4x6 patch grid of a 32x48 input
    assert attention.shape == (len(SEGMENTATION_CLASSES), 4, 6)
    np.testing.assert_allclose(attention.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    sheet = with_attention.class_attention_image(["cat", "dog"])
    assert sheet.width > 2 * photo.width and sheet.height > photo.height  # two maps side by side, a bar below
    with pytest.raises(ValueError, match="unknown class"):
        with_attention.class_attention_image(["zebra"])
    with pytest.raises(ValueError, match="no class attention"):
        plain.class_attention_image()


def test_segment_app_writes_class_attention_only_for_decoders_that_have_it(segmenter_checkpoints, tmp_path, capsys):
    photo = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out"
    args = [str(photo), "--output-dir", str(out), "--class-attention"]
    assert main(["segment", *args, "--checkpoint", str(segmenter_checkpoints["mask_transformer"])]) == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == ["street_class_attention.png", "street_labels.png", "street_overlay.png"]
    assert Image.open(out / "street_class_attention.png").mode == "RGB"
    capsys.readouterr()
    assert main(["segment", *args, "--checkpoint", str(segmenter_checkpoints["unet"]), "--overwrite"]) == 2
    error = capsys.readouterr().err.strip()
    assert "'unet' decoder" in error and "no class attention" in error and len(error.splitlines()) == 1


def test_segmenter_runs_the_unet_decoder_at_each_images_size(segmenter_checkpoints):
    segmenter = multimodal_s2s.Segmenter.from_checkpoint(segmenter_checkpoints["unet"], device="cpu")
    results = segmenter([np.zeros((31, 45, 3), dtype=np.uint8), np.full((20, 64, 3), 200, dtype=np.uint8)])
    assert [result.labels.shape for result in results] == [(31, 45), (20, 64)]
