"""Captioning training with the shared Seq2SeqModule: the loss falls, validation logs BLEU and CIDEr,
and a checkpoint alone rebuilds the model, which then captions exactly as before."""

from __future__ import annotations

import pytest
import torch
from captioning_fixtures import TINY_GRID, tiny_captioning_run

from multimodal_s2s.checkpoint import CHECKPOINT_KEY, CheckpointError
from multimodal_s2s.data.shapes import ShapeScenes
from multimodal_s2s.inference import ImageCaptioner, load_seq2seq
from multimodal_s2s.types import Modality

TRAIN_STEPS = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for TRAIN_STEPS steps, its losses, and its checkpoint."""
    losses: list[float] = []
    trainer, module, data = tiny_captioning_run(TRAIN_STEPS, record_losses=losses)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return trainer, module, data, losses, path


def test_short_training_lowers_the_loss(trained):
    _, _, _, losses, _ = trained
    assert len(losses) == TRAIN_STEPS
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)


def test_validation_logs_bleu_and_cider(trained):
    trainer, *_ = trained
    trainer.validate(trained[1], trained[2], verbose=False)
    metrics = trainer.callback_metrics
    for key in ("val/bleu1", "val/bleu4", "val/cider", "val/loss"):
        assert key in metrics and torch.isfinite(metrics[key])
    assert 0 <= float(metrics["val/bleu4"]) <= 100


def test_checkpoint_is_self_contained(trained):
    *_, path = trained
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    meta = checkpoint[CHECKPOINT_KEY]
    assert meta["task"] == "seq2seq" and meta["preprocess"]["task"] == "captioning"
    assert meta["model"]["encoder"] == "cnn" and meta["tokenizer"]["type"] == "word"
    assert meta["preprocess"]["image_size"] == [32, 32]


def test_checkpoint_round_trip_gives_identical_captions(trained):
    _, module, data, _, path = trained
    scenes = ShapeScenes(seed=42, image_size=32)
    images = [scenes[i].image for i in range(4)]
    captioner = ImageCaptioner.load(path, device="cpu")
    inputs = torch.stack([captioner.prepare(image) for image in images])
    module.eval()
    expected = module.generate(inputs, None)
    loaded = captioner.caption(images, captioner.pipeline.options())
    assert [g.text for g in loaded] == expected
    assert captioner.attention_grid == TINY_GRID
    assert captioner.pipeline.tokenizer == data.tokenizer


def test_loading_refuses_another_task_and_missing_files(trained, tmp_path):
    *_, path = trained
    with pytest.raises(CheckpointError, match=r"missing\.ckpt: checkpoint not found"):
        load_seq2seq(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="needs one whose model reads text"):
        load_seq2seq(path, Modality.TEXT)
    segmentation = torch.load(path, map_location="cpu", weights_only=True)
    segmentation[CHECKPOINT_KEY] = {**segmentation[CHECKPOINT_KEY], "task": "segmentation"}
    torch.save(segmentation, tmp_path / "seg.ckpt")
    with pytest.raises(CheckpointError, match=r"seg\.ckpt: a 'segmentation' checkpoint"):
        ImageCaptioner.load(tmp_path / "seg.ckpt")
    renamed = torch.load(path, map_location="cpu", weights_only=True)
    renamed[CHECKPOINT_KEY]["model"]["encoder"] = "no_such_encoder"
    torch.save(renamed, tmp_path / "renamed.ckpt")
    with pytest.raises(CheckpointError, match=r"renamed\.ckpt: cannot rebuild the model .*no_such_encoder"):
        ImageCaptioner.load(tmp_path / "renamed.ckpt")


def test_show_attend_tell_baseline_gives_attention_over_the_grid(tmp_path):
    trainer, _, _ = tiny_captioning_run(2, decoder="rnn_attention")
    trainer.save_checkpoint(tmp_path / "sat.ckpt")
    captioner = ImageCaptioner.load(tmp_path / "sat.ckpt")
    image = ShapeScenes(seed=7, image_size=32)[0].image
    generation = captioner.caption([image], captioner.pipeline.options(return_attention=True))[0]
    maps = captioner.attention_maps(generation)
    assert maps.shape == (len(generation.tokens), *TINY_GRID)
    assert torch.allclose(maps.sum(dim=(1, 2)), torch.ones(len(generation.tokens)), atol=1e-4)
