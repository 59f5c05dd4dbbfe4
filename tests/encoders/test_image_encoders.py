"""Image encoders (cnn, segnet, vit): outputs match their declared EncoderInfo; weights load from local files."""

from __future__ import annotations

import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from encoder_contract import EncoderContract
from torch import nn
from torchvision.models.vgg import make_layers

from multimodal_s2s.encoders.weights import WeightsError
from multimodal_s2s.layers.image_positions import grid_positions_2d
from multimodal_s2s.registry import encoder_entry, list_encoders

TINY_CNN = {"channels": (8, 16, 32, 64), "stem_width": 8}  # resnet10t at tiny widths
TINY_VIT = {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 32, "patch_size": 8}
TINY_VGG = {"channels": (4, 8, 8, 16, 16)}
TINY_BASIC = {"channels": 8}
#: (registered name, constructor args) of small versions of every image encoder.
TINY_ENCODERS = [
    ("cnn_tiny", TINY_CNN),
    ("cnn", {"backbone": "resnet10t", "out_indices": (1, 2, 3), **TINY_CNN}),
    ("segnet_vgg16", TINY_VGG),
    ("segnet_basic", TINY_BASIC),
    ("vit_tiny", TINY_VIT),
]


def build(name: str, **args):
    return encoder_entry(name).factory(**args).eval()


def test_all_sizes_are_registered_as_image_encoders():
    expected = {"cnn", "cnn_tiny", "cnn_small", "cnn_base", "segnet_vgg16", "segnet_basic"}
    expected |= {"vit_tiny", "vit_small", "vit_base"}
    assert expected <= set(list_encoders("image"))


class TestImageEncoderContract(EncoderContract):
    ENCODERS = {name: (name, args) for name, args in TINY_ENCODERS}

    def make_inputs(self, name, args):
        return torch.randn(2, 3, 64, 64), None

    def valid_rows(self, name, args, lengths, rows):
        return [rows, rows]

    def bad_inputs(self, name, args):
        too_small = {"segnet_vgg16": (torch.randn(1, 3, 24, 40), "at least 32x32 for 5 poolings")}
        too_small["segnet_basic"] = (torch.randn(1, 3, 12, 40), "at least 16x16")
        too_small["vit_tiny"] = (torch.randn(1, 3, 30, 32), "divisible by the patch size 8")
        cases = [
            (torch.randn(1, 3, 32, 32), torch.tensor([32]), "no lengths"),
        ]
        if name in too_small:
            cases.append((*too_small[name][:1], None, too_small[name][1]))
        return cases

    def declared_bad_inputs(self, name, args):
        return [(torch.randn(1, 4, 32, 32), None, "must have 3 channels"), (torch.randn(1, 3, 0, 32), None, "zero")]


def test_cnn_info_comes_from_timm_feature_info():
    encoder = build("cnn_small")
    assert encoder.info.channels == (64, 64, 128, 256, 512)
    assert encoder.info.reductions == (2, 4, 8, 16, 32)
    assert encoder.info.out_dim == 512


def test_cnn_sequence_is_deepest_grid_plus_2d_positions():
    encoder = build("cnn_tiny", **TINY_CNN)
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        deepest = encoder.encode_feature_maps(images).features[-1]  # (1, 64, 2, 3)
        memory = encoder.encode_sequence(images).memory
    positions = memory - deepest.flatten(2).transpose(1, 2)
    torch.testing.assert_close(positions[0], grid_positions_2d(2, 3, 64), atol=1e-5, rtol=0)
    assert torch.unique(positions[0], dim=0).shape[0] == 6  # every cell is told apart


def test_cnn_positions_in_channels_of_their_own():
    encoder = build("cnn_tiny", **TINY_CNN, position_channels=16, position_scale=3.0)
    assert encoder.info.out_dim == 64 + 16
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        deepest = encoder.encode_feature_maps(images).features[-1]  # (2, 64, 2, 3)
        memory = encoder.encode_sequence(images).memory  # (2, 6, 80)
    torch.testing.assert_close(memory[..., :64], deepest.flatten(2).transpose(1, 2))
    torch.testing.assert_close(memory[1, :, 64:], 3.0 * grid_positions_2d(2, 3, 16), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="position_channels"):
        build("cnn_tiny", **TINY_CNN, position_channels=5)


def test_segnet_vgg16_declares_the_paper_topology():
    info = build("segnet_vgg16").info
    assert info.stage_depths == (2, 2, 3, 3, 3)
    assert info.channels == (64, 128, 256, 512, 512)
    assert info.reductions == (2, 4, 8, 16, 32)
    basic = build("segnet_basic").info
    assert basic.stage_depths == (1, 1, 1, 1) and basic.channels == (64,) * 4 and basic.reductions == (2, 4, 8, 16)


def test_segnet_pool_indices_unpool_odd_sizes():
    encoder = build("segnet_vgg16", **TINY_VGG)
    with torch.no_grad():
        maps = encoder.encode_feature_maps(torch.randn(2, 3, 36, 50))
    assert [tuple(s) for s in maps.pool_input_sizes] == [(36, 50), (18, 25), (9, 12), (4, 6), (2, 3)]
    for pooled, indices, size in zip(maps.features, maps.pool_indices, maps.pool_input_sizes, strict=True):
        unpooled = F.max_unpool2d(pooled, indices, kernel_size=2, stride=2, output_size=size)
        assert unpooled.shape[-2:] == size
        # post-ReLU maxima are >= 0 and the rest is zero, so pooling again gives the maps back
        torch.testing.assert_close(F.max_pool2d(unpooled, 2, 2), pooled)


@pytest.mark.parametrize("height, width", [(32, 32), (48, 64)])
def test_vit_any_size_divisible_by_patch(height, width):
    encoder = build("vit_tiny", **TINY_VIT)
    images = torch.randn(2, 3, height, width)
    with torch.no_grad():
        encoded = encoder.encode_sequence(images)
        (grid,) = encoder.encode_feature_maps(images).features
    rows, cols = height // 8, width // 8
    assert encoded.memory.shape == (2, rows * cols, 32)  # patch tokens only: no class token
    assert grid.shape == (2, 32, rows, cols)
    torch.testing.assert_close(grid.flatten(2).transpose(1, 2), encoded.memory)  # row-major patch grid


def test_vit_tiny_defaults_are_timms():
    vit = build("vit_tiny", depth=1).vit
    assert (vit.embed_dim, vit.patch_embed.patch_size, vit.blocks[0].attn.num_heads) == (192, (16, 16), 3)


def _outputs(encoder, images):
    with torch.no_grad():
        return encoder.encode_feature_maps(images).features[-1]


def _randomize_norm_stats(module: nn.Module) -> None:
    """Fresh BatchNorm running stats are 0/1; make them differ so that loading them is tested."""
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize(
    "name, args, inner",
    [("cnn_tiny", TINY_CNN, "backbone"), ("vit_tiny", TINY_VIT, "vit"), ("segnet_basic", TINY_BASIC, None)],
)
def test_pretrained_path_round_trips(tmp_path, name, args, inner, suffix):
    source = build(name, **args)
    _randomize_norm_stats(source)
    module = source if inner is None else getattr(source, inner)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    safetensors.torch.save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    loaded = build(name, **args, pretrained_path=str(path))
    images = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(_outputs(loaded, images), _outputs(source, images))
    assert not torch.allclose(_outputs(build(name, **args), images), _outputs(source, images))


def test_cnn_loads_a_timm_classifier_checkpoint(tmp_path):
    classifier = timm.create_model("resnet10t", pretrained=False, **TINY_CNN).eval()
    _randomize_norm_stats(classifier)
    torch.save(classifier.state_dict(), tmp_path / "resnet10t.pth")  # with its fc head, which is ignored
    encoder = build("cnn_tiny", **TINY_CNN, pretrained_path=str(tmp_path / "resnet10t.pth"))
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(_outputs(encoder, images), classifier.forward_features(images))


class _TorchvisionVGG(nn.Module):
    """torchvision's VGG-BN layout (``features.N.*``, ``classifier.*``) at tiny widths."""

    def __init__(self, channels):
        super().__init__()
        depths = (2, 2, 3, 3, 3)
        config = [item for width, depth in zip(channels, depths, strict=True) for item in [width] * depth + ["M"]]
        self.features = make_layers(config, batch_norm=True)
        self.classifier = nn.Linear(channels[-1], 10)


def test_segnet_vgg16_loads_torchvision_vgg16_bn_state_dict(tmp_path):
    vgg = _TorchvisionVGG(TINY_VGG["channels"]).eval()
    _randomize_norm_stats(vgg)
    torch.save(vgg.state_dict(), tmp_path / "vgg16_bn.pth")
    encoder = build("segnet_vgg16", **TINY_VGG, pretrained_path=str(tmp_path / "vgg16_bn.pth"))
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(_outputs(encoder, images), vgg.features(images))


def test_segnet_vgg16_refuses_a_vgg_with_other_depths(tmp_path):
    vgg11 = nn.Module()
    vgg11.features = make_layers([4, "M", 8, "M", 8, 8, "M", 16, 16, "M", 16, 16, "M"], batch_norm=True)
    torch.save(vgg11.state_dict(), tmp_path / "vgg11.pth")
    with pytest.raises(WeightsError, match=r"vgg11\.pth holds 8 conv .* needs 13"):
        build("segnet_vgg16", **TINY_VGG, pretrained_path=str(tmp_path / "vgg11.pth"))


def test_missing_corrupt_and_mismatched_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        build("cnn_tiny", **TINY_CNN, pretrained_path=str(tmp_path / "absent.pt"))
    for corrupt in ("corrupt.pt", "corrupt.safetensors"):
        (tmp_path / corrupt).write_bytes(b"not a weights file")
        with pytest.raises(WeightsError, match=f"cannot read weights file .*{corrupt}"):
            build("vit_tiny", **TINY_VIT, pretrained_path=str(tmp_path / corrupt))
    torch.save(build("segnet_basic", channels=4).state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(
        WeightsError, match=r"narrow\.pt: .* has shape \(4, 3, 7, 7\), the encoder needs \(8, 3, 7, 7\)"
    ):
        build("segnet_basic", **TINY_BASIC, pretrained_path=str(tmp_path / "narrow.pt"))
    torch.save({"unrelated.weight": torch.zeros(1)}, tmp_path / "unrelated.pt")
    with pytest.raises(WeightsError, match=r"unrelated\.pt lacks"):
        build("cnn_tiny", **TINY_CNN, pretrained_path=str(tmp_path / "unrelated.pt"))
