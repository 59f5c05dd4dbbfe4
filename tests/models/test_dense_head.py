"""The one head after any dense decoder: checkpoints written when each dense decoder had its own classifier
(``decoder.classifier.*``) load to identical logits and label maps, through every way weights come in."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from checkpoint_helpers import segmentation_header, write_checkpoint
from torch import nn

import multimodal_s2s
from multimodal_s2s.checkpoint import MODEL_PREFIX, read_checkpoint
from multimodal_s2s.decoders.dense import SegmentationHead
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint

#: The key layout before the shared head (ce98b4c): the unet and segnet decoders held their 1x1 classifier.
OLD_CLASSIFIER_KEYS = {
    "head.classifier.weight": "decoder.classifier.weight",
    "head.classifier.bias": "decoder.classifier.bias",
}
#: (encoder, encoder_args, decoder, decoder_args), small, at the header's 32 x 48 input size.
PAIRS = {
    "unet": ("cnn_tiny", {"channels": (8, 16, 32, 64), "stem_width": 8}, "unet", {}),
    "segnet": ("segnet_basic", {"channels": 4}, "segnet", {}),
    "mask_transformer": (
        "vit_tiny",
        {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": [32, 48], "patch_size": 8},
        "mask_transformer",
        {"d_model": 32, "num_heads": 2},
    ),
}


def _config(name: str) -> ModelConfig:
    encoder, encoder_args, decoder, decoder_args = PAIRS[name]
    return ModelConfig(encoder, decoder, encoder_args, decoder_args, num_classes=3)


def _old_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict as ce98b4c saved it: the head's classifier under the decoder's old key names."""
    return {OLD_CLASSIFIER_KEYS.get(key, key): value for key, value in state.items()}


@pytest.fixture(params=sorted(PAIRS))
def trained(request) -> tuple[str, nn.Module]:
    torch.manual_seed(0)
    model = build_model(_config(request.param)).eval()
    with torch.no_grad():  # move the norms' statistics off their initial values, as training does
        for buffer in model.buffers():
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    return request.param, model


def test_the_head_holds_the_classifier_keys_the_decoders_held(trained):
    name, model = trained
    head_keys = sorted(key for key in model.state_dict() if key.startswith("head."))
    assert head_keys == ([] if name == "mask_transformer" else sorted(OLD_CLASSIFIER_KEYS))
    assert not any(key.startswith("decoder.classifier.") for key in model.state_dict())


def test_an_old_layout_checkpoint_loads_to_identical_logits_and_labels(trained, tmp_path):
    name, model = trained
    header = replace(segmentation_header(), model=_config(name))
    state = {f"{MODEL_PREFIX}{key}": value for key, value in model.state_dict().items()}
    old = write_checkpoint(tmp_path / "old.ckpt", header, _old_layout(state))
    new = write_checkpoint(tmp_path / "new.ckpt", header, state)
    images = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images)
        assert torch.equal(model_from_checkpoint(read_checkpoint(old))(images), expected)
    photos = [np.random.default_rng(seed).integers(0, 256, (30, 45, 3), dtype=np.uint8) for seed in range(2)]
    old_labels = [result.labels for result in multimodal_s2s.Segmenter.from_checkpoint(old, device="cpu")(photos)]
    new_labels = [result.labels for result in multimodal_s2s.Segmenter.from_checkpoint(new, device="cpu")(photos)]
    assert all(np.array_equal(a, b) for a, b in zip(old_labels, new_labels, strict=True))


def test_old_keys_load_under_a_prefix_as_lightning_resumes_them(trained):
    name, model = trained
    torch.manual_seed(1)  # other initial weights, all replaced by the load
    wrapper = nn.ModuleDict({"model": build_model(_config(name))}).eval()
    wrapper.load_state_dict({f"model.{key}": value for key, value in _old_layout(model.state_dict()).items()})
    images = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(wrapper["model"](images), model(images))


@pytest.mark.parametrize("layout", ["old", "new"])
def test_a_dense_decoders_pretrained_path_copies_its_head_from_either_layout(tmp_path, layout):
    torch.manual_seed(0)
    source = build_model(_config("unet"))
    state = {f"{MODEL_PREFIX}{key}": value for key, value in source.state_dict().items()}
    header = replace(segmentation_header(), model=_config("unet"))
    path = write_checkpoint(tmp_path / f"{layout}.ckpt", header, _old_layout(state) if layout == "old" else state)
    encoder, encoder_args, decoder, _ = PAIRS["unet"]
    torch.manual_seed(1)
    started = multimodal_s2s.create_model(encoder, decoder, encoder_args, {"pretrained_path": str(path)}, num_classes=3)
    for part in ("decoder", "head"):
        mine, theirs = getattr(started, part).state_dict(), getattr(source, part).state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[key], theirs[key]) for key in mine)


def test_the_head_refuses_class_scores_of_another_width():
    with pytest.raises(ValueError, match="need 5 channels"):
        SegmentationHead(4, 5, classify=False, upsample=True)
    head = SegmentationHead(5, 5, classify=False, upsample=True)
    scores = torch.randn(1, 5, 3, 4)
    assert not list(head.parameters()) and head(scores, (12, 16)).shape == (1, 5, 12, 16)
