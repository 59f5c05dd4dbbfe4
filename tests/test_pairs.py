"""The grid: every compatible encoder x decoder pair in tiny size builds, runs forward and backward
with the declared shapes, ignores padding, and incompatible pairs fail with the clear error."""

from __future__ import annotations

import re

import pytest
import torch

from multimodal_s2s import IncompatiblePairError, create_model, list_decoders, list_encoders
from multimodal_s2s.registry import decoder_entry, encoder_entry, encoders_fitting
from multimodal_s2s.types import Modality

VOCAB, CLASSES, BATCH = 11, 5, 2
TINY_ENCODERS = {
    "cnn_tiny": {},
    "segnet_basic": {},
    "segnet_vgg16": {},
    "vit_tiny": {"img_size": 32, "patch_size": 8, "depth": 2},
    "audio_transformer_tiny": {},
    "text_lstm_tiny": {"vocab_size": 13},
    "text_gru_tiny": {"vocab_size": 13},
    "text_transformer_tiny": {"vocab_size": 13},
}
TINY_DECODERS = {
    "transformer_tiny": {},
    "rnn_attention": {"hidden_size": 32, "embed_dim": 16},
    "rnn": {"hidden_size": 32, "embed_dim": 16},
    "segnet": {},
    "unet": {},
    "mask_transformer": {"d_model": 32, "num_heads": 2},
}
IMAGE_SIDE, AUDIO_FRAMES, TEXT_LEN = 32, 60, 7


def make_inputs(modality: Modality) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs (B, ...) and lengths (B,) with the second example padded."""
    if modality == Modality.IMAGE:
        return torch.randn(BATCH, 3, IMAGE_SIDE, IMAGE_SIDE), None
    if modality == Modality.AUDIO:
        return torch.randn(BATCH, 80, AUDIO_FRAMES), torch.tensor([AUDIO_FRAMES, 41])
    return torch.randint(4, 13, (BATCH, TEXT_LEN)), torch.tensor([TEXT_LEN, 4])


def all_pairs() -> list[tuple[str, str, bool]]:
    return [
        (enc, dec, decoder_entry(dec).requires <= encoder_entry(enc).emits)
        for enc in TINY_ENCODERS
        for dec in TINY_DECODERS
    ]


def build(encoder: str, decoder: str):
    size = {"vocab_size": VOCAB} if decoder_entry(decoder).output == "text" else {"num_classes": CLASSES}
    return create_model(encoder, decoder, TINY_ENCODERS[encoder], TINY_DECODERS[decoder], **size)


def family(name: str) -> str:
    """A registered name without its size: cnn_tiny, cnn_small and cnn are all the cnn family."""
    return re.sub(r"_(tiny|small|base)$", "", name)


def test_grid_covers_every_registered_tiny_part():
    """Every registered family stands in the grid (at its tiny size), and the grid names only registered parts."""
    assert {family(name) for name in list_decoders()} <= {family(name) for name in TINY_DECODERS}
    assert {family(name) for name in list_encoders()} <= {family(name) for name in TINY_ENCODERS}
    assert set(TINY_DECODERS) <= set(list_decoders()) and set(TINY_ENCODERS) <= set(list_encoders())
    modalities = {encoder_entry(e).modality for e in TINY_ENCODERS}
    assert modalities == set(Modality)


@pytest.mark.parametrize(("encoder", "decoder"), [(e, d) for e, d, ok in all_pairs() if ok])
def test_compatible_pair_forward_backward(encoder, decoder):
    model = build(encoder, decoder)
    inputs, lengths = make_inputs(encoder_entry(encoder).modality)
    if decoder_entry(decoder).output == "text":
        tokens = torch.randint(0, VOCAB, (BATCH, 5))
        out = model(inputs, tokens, lengths)
        assert out.shape == (BATCH, 5, VOCAB)
        encoded = model.encode(inputs, lengths)
        info = model.encoder.info
        assert encoded.memory.shape[0] == BATCH and encoded.memory.shape[2] == info.out_dim
        assert encoded.mask.dtype == torch.bool and encoded.mask.shape == encoded.memory.shape[:2]
    else:
        out = model(inputs)
        assert out.shape == (BATCH, CLASSES, IMAGE_SIDE, IMAGE_SIDE)
        maps = model.encoder.encode_feature_maps(inputs)
        assert [f.shape[1] for f in maps.features] == list(model.encoder.info.channels)
        assert [IMAGE_SIDE // f.shape[-1] for f in maps.features] == list(model.encoder.info.reductions)
        features = model.decoder(maps, inputs.shape[-2:])  # what the decoder declares, the head turns into logits
        assert features.shape[1] == model.decoder.out_channels
        assert IMAGE_SIDE // features.shape[-1] == model.decoder.out_reduction
    out.float().square().mean().backward()
    for part in (model.encoder, model.decoder):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient reached the {part}"


@pytest.mark.parametrize(
    ("encoder", "decoder"),
    [(e, d) for e, d, ok in all_pairs() if ok and encoder_entry(e).modality != Modality.IMAGE],
)
def test_padding_does_not_change_outputs(encoder, decoder):
    model = build(encoder, decoder).eval()
    inputs, lengths = make_inputs(encoder_entry(encoder).modality)
    tokens = torch.randint(4, VOCAB, (BATCH, 5))
    with torch.no_grad():
        batched = model(inputs, tokens, lengths)[1]
        short = int(lengths[1])
        alone = model(inputs[1:, ..., :short], tokens[1:], lengths[1:])[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("encoder", "decoder"), [(e, d) for e, d, ok in all_pairs() if not ok])
def test_incompatible_pair_fails_clearly(encoder, decoder):
    with pytest.raises(IncompatiblePairError) as error:
        build(encoder, decoder)
    message = str(error.value)
    assert "\n" not in message and encoder in message and decoder in message
    assert "encoders that fit" in message and "cnn_tiny" in message


@pytest.mark.parametrize("decoder", sorted(TINY_DECODERS))
def test_the_encoders_said_to_fit_emit_what_the_decoder_requires(decoder):
    requires = decoder_entry(decoder).requires
    fitting = encoders_fitting(decoder)
    assert fitting and all(requires <= encoder_entry(encoder).emits for encoder in fitting)
    assert {e for e, d, ok in all_pairs() if d == decoder and ok} <= set(fitting)
