"""Captioning training with the shared Seq2SeqModule: the loss falls, validation logs BLEU and CIDEr,
and a checkpoint alone rebuilds the model, which then captions exactly as before."""

from __future__ import annotations

import pytest
import torch
from captioning_fixtures import TINY_GRID, tiny_captioning_run

from multimodal_s2s.checkpoint import CHECKPOINT_KEY, FORMAT_VERSION, CheckpointError, Task, read_checkpoint
from multimodal_s2s.data.shapes import ShapeScenes
from multimodal_s2s.lit.seq2seq import Seq2SeqModule
from multimodal_s2s.pipelines import Captioner, Translator

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
    header = read_checkpoint(path).header
    assert header.task == Task.CAPTIONING and header.format_version == FORMAT_VERSION
    assert header.model.encoder == "cnn" and header.tokenizer.to_dict()["type"] == "word"
    assert header.preprocessing.image_size == (32, 32) and header.decoding.beam_size == 2
    assert header.data.name == "shapes" and "val/bleu4" in header.metrics


def test_checkpoint_round_trip_gives_identical_captions(trained):
    _, module, data, _, path = trained
    scenes = ShapeScenes(seed=42, image_size=32)
    images = [scenes[i].image for i in range(4)]
    captioner = Captioner.from_checkpoint(path, device="cpu")
    inputs = torch.stack([captioner.prepare(image) for image in images])
    module.eval()
    expected = [text for text, _ in module.generate(inputs, None)]
    assert [caption.text for caption in captioner(images)] == expected
    assert captioner.attention_grid == TINY_GRID
    assert captioner.header.tokenizer == data.tokenizer
    reloaded = Seq2SeqModule.load_from_checkpoint(path).eval()
    assert [text for text, _ in reloaded.generate(inputs, None)] == expected


def test_loading_refuses_another_task_and_missing_files(trained, tmp_path):
    *_, path = trained
    with pytest.raises(CheckpointError, match=r"missing\.ckpt: checkpoint not found"):
        Captioner.from_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="task is captioning, but this needs translation"):
        Translator.from_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    raw[CHECKPOINT_KEY]["model"]["encoder"] = "no_such_encoder"
    torch.save(raw, tmp_path / "renamed.ckpt")
    with pytest.raises(CheckpointError, match=r"renamed\.ckpt: cannot rebuild the model .*no_such_encoder"):
        Captioner.from_checkpoint(tmp_path / "renamed.ckpt")


def test_show_attend_tell_baseline_gives_attention_over_the_grid(tmp_path):
    trainer, _, _ = tiny_captioning_run(2, decoder="rnn_attention")
    trainer.save_checkpoint(tmp_path / "sat.ckpt")
    captioner = Captioner.from_checkpoint(tmp_path / "sat.ckpt")
    image = ShapeScenes(seed=7, image_size=32)[0].image
    caption = captioner([image], return_attention=True)[0]
    assert caption.attention.shape == (len(caption.tokens), *TINY_GRID)
    assert torch.allclose(caption.attention.sum(dim=(1, 2)), torch.ones(len(caption.tokens)), atol=1e-4)
