"""Abilities are declared, never probed: every image encoder's declared grid is the grid of the memory rows
it really produces (odd sizes included), and every decoder's registry entry says truly what it makes and
shows (attention, class attention)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from multimodal_s2s import create_model
from multimodal_s2s.encoders.cnn import strided_rounding
from multimodal_s2s.registry import decoder_entry, encoder_entry, list_decoders, list_encoders, register_decoder
from multimodal_s2s.types import DecoderOutput, Emits, Grid, Modality, Rounding

#: Small versions of the registered image encoders (the grid does not depend on the width or depth).
SMALL_ENCODER_ARGS = {
    **{name: {"depth": 1, "embed_dim": 32, "num_heads": 2} for name in ("vit_tiny", "vit_small", "vit_base")},
    "cnn": {"backbone": "test_resnet"},
    "segnet_vgg16": {"channels": (4, 4, 4, 4, 4)},
    "segnet_basic": {"channels": 4},
}
#: Image sizes (H, W): multiples of every reduction, then odd ones (ViTs take multiples of their patch only).
SIZES = [(64, 96), (65, 67), (70, 99)]
PATCH_SIZES = [(32, 48), (64, 16)]
SMALL_DECODER_ARGS = {
    "transformer": {"d_model": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64},
    "rnn": {"embed_dim": 8, "hidden_size": 16},
    "rnn_attention": {"embed_dim": 8, "hidden_size": 16},
}
TINY_CNN = {"backbone": "test_resnet", "out_indices": [1, 2]}


def image_encoder(name: str, **extra):
    return encoder_entry(name).factory(**{**SMALL_ENCODER_ARGS.get(name, {}), **extra}).eval()


@pytest.mark.parametrize("name", list_encoders(Modality.IMAGE))
def test_every_image_encoders_declared_grid_is_the_grid_of_its_memory_rows(name):
    encoder = image_encoder(name)
    grid = encoder.info.grid
    assert grid is not None and Emits.SEQUENCE in encoder.info.emits
    for size in PATCH_SIZES if name.startswith("vit") else SIZES:
        height, width = grid.size(size)
        with torch.no_grad():
            memory = encoder.encode_sequence(torch.zeros(1, 3, *size)).memory  # (1, h*w, D)
            deepest = encoder.encode_feature_maps(torch.zeros(1, 3, *size)).features[-1]  # (1, C, h, w)
        assert memory.shape[1] == height * width and tuple(deepest.shape[-2:]) == (height, width), size


@pytest.mark.parametrize("name", list_encoders(Modality.AUDIO) + list_encoders(Modality.TEXT))
def test_audio_and_text_encoders_declare_no_image_grid(name):
    args = {"vocab_size": 12} if encoder_entry(name).modality == Modality.TEXT else {}
    assert encoder_entry(name).factory(**args).info.grid is None


@pytest.mark.parametrize(("backbone", "rounding"), [("convnext_atto", Rounding.FLOOR), ("test_resnet", Rounding.CEIL)])
def test_a_cnns_rounding_is_read_from_its_layers(backbone, rounding):
    """ResNets pad each strided layer (ceil); ConvNeXt's stem and downsampling are unpadded (floor)."""
    encoder = image_encoder("cnn", backbone=backbone)
    assert encoder.info.grid.rounding == rounding
    for size in SIZES:
        with torch.no_grad():
            rows = encoder.encode_sequence(torch.zeros(1, 3, *size)).memory.shape[1]
        assert rows == encoder.info.grid.size(size)[0] * encoder.info.grid.size(size)[1], size


def test_layers_that_round_both_ways_give_a_grid_for_multiples_only_and_unknown_ones_none():
    mixed = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 1))
    assert strided_rounding(mixed) == Rounding.EXACT
    grid = Grid(4, Rounding.EXACT)
    assert grid.size((64, 96)) == tuple(mixed(torch.zeros(1, 3, 64, 96)).shape[-2:]) == (16, 24)
    assert grid.size((65, 96)) is None
    assert strided_rounding(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2))) is None  # unpadded 3x3: neither
    assert strided_rounding(nn.Sequential(nn.Conv2d(3, 4, 3))) is None  # a stride-1 layer that shrinks
    assert strided_rounding(nn.Sequential(nn.Conv2d(3, 4, 4, stride=4), nn.Conv2d(4, 4, 3, padding=1))) == (
        Rounding.FLOOR
    )


@pytest.mark.parametrize("name", list_decoders())
def test_every_decoder_entry_says_truly_what_it_makes_and_shows(name):
    entry = decoder_entry(name)
    assert isinstance(entry.output, DecoderOutput)
    args = SMALL_DECODER_ARGS.get(name, {})
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32)
    if entry.output == DecoderOutput.TEXT:
        model = create_model("cnn", name, TINY_CNN, args, vocab_size=12).eval()
        with torch.no_grad():
            step = model.step(torch.ones(2, 1, dtype=torch.long), model.encode(images), return_attention=True)
        assert step.logits.shape == (2, 1, 12)
        assert (step.attention is not None) == entry.attends and not entry.class_attention
        return
    model = create_model("cnn", name, TINY_CNN, args, num_classes=3).eval()
    assert model.draws_class_attention == entry.class_attention and not entry.attends
    with torch.no_grad():
        if not entry.class_attention:
            with pytest.raises(ValueError, match="has no class attention"):
                model.logits_and_class_attention(images)
            return
        logits, attention = model.logits_and_class_attention(images)  # (B, K, H, W), (B, K, h, w)
    assert logits.shape == (2, 3, 32, 32) and attention.shape[:2] == (2, 3)
    assert torch.allclose(attention.flatten(2).sum(-1), torch.ones(2, 3), atol=1e-5)


def test_the_registry_refuses_abilities_a_decoder_of_that_output_cannot_have():
    with pytest.raises(ValueError, match="attends is for text decoders"):
        register_decoder("dense_that_attends", requires={Emits.FEATURE_MAPS}, output="dense", attends=True)
    with pytest.raises(ValueError, match="class_attention and makes_class_scores for dense ones"):
        register_decoder("text_with_classes", requires={Emits.SEQUENCE}, output="text", class_attention=True)
    with pytest.raises(ValueError, match="class_attention and makes_class_scores for dense ones"):
        register_decoder("text_scores", requires={Emits.SEQUENCE}, output="text", makes_class_scores=True)
    with pytest.raises(ValueError, match="must be 'text' or 'dense'"):
        register_decoder("boxes", requires={Emits.FEATURE_MAPS}, output="boxes")
    assert "dense_that_attends" not in list_decoders() and "boxes" not in list_decoders()
