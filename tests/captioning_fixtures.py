"""Helpers shared by the captioning tests: a tiny captioning checkpoint trained in seconds, and small
files in each caption format."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from PIL import Image

from multimodal_s2s.data.captioning import CaptioningDataModule
from multimodal_s2s.lit.seq2seq import Seq2SeqModule

TINY_IMAGE_SIZE = 32
#: A small timm CNN; its stages to stride 8 give a 4x4 grid on 32x32 images.
TINY_ENCODER_ARGS = {"backbone": "test_resnet", "out_indices": [1, 2]}
TINY_DECODER_ARGS = {
    "transformer": {"d_model": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64, "dropout": 0.0},
    "rnn_attention": {"embed_dim": 16, "hidden_size": 32, "dropout": 0.0},
}
TINY_GRID = (4, 4)


class LossRecorder(Callback):
    """Appends each training step's loss to ``losses``."""

    def __init__(self, losses: list[float]):
        self.losses = losses

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))


def tiny_captioning_run(
    steps: int, lr: float = 3e-3, record_losses: list[float] | None = None, decoder: str = "transformer"
) -> tuple[L.Trainer, Seq2SeqModule, CaptioningDataModule]:
    """Train a tiny shapes captioner for ``steps`` steps (no logger, no checkpoint files); each step's
    loss is appended to ``record_losses`` when given. ``decoder``: "transformer" or "rnn_attention"."""
    L.seed_everything(0, verbose=False)
    module = Seq2SeqModule(
        "cnn", decoder, TINY_ENCODER_ARGS, TINY_DECODER_ARGS[decoder],
        lr=lr, warmup_steps=2, metrics=["bleu", "cider"], beam_size=2, max_length=8,
    )
    data = CaptioningDataModule(
        format="shapes", image_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), shapes_image_size=TINY_IMAGE_SIZE,
        batch_size=16, shapes_train_size=16 * steps, shapes_val_size=8,
    )
    trainer = L.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1, accelerator="cpu",
        callbacks=[LossRecorder(record_losses)] if record_losses is not None else [],
    )
    trainer.fit(module, data)
    return trainer, module, data


def save_tiny_checkpoint(path: Path, steps: int = 2) -> Seq2SeqModule:
    """Train briefly and write a checkpoint to ``path``; returns the trained module."""
    trainer, module, _ = tiny_captioning_run(steps)
    trainer.save_checkpoint(path)
    return module


def write_image(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    """A small random RGB image file (format from the suffix)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_flickr8k(root: Path, names_by_split: dict[str, list[str]], captions_per_image: int = 3) -> Path:
    """A Flickr8k-style folder: one token file per split, split lists, ``images/``."""
    (root / "images").mkdir(parents=True)
    for split, names in names_by_split.items():
        lines = []
        for index, name in enumerate(names):
            write_image(root / "images" / name, seed=index)
            lines += [f"{name}#{k}\tA picture number {index} , caption {k} ." for k in range(captions_per_image)]
        (root / f"Flickr8k.token.{split}.txt").write_text("\n".join(lines) + "\n")
        (root / f"Flickr_8k.{split}Images.txt").write_text("\n".join(names) + "\n")
    return root


def write_coco(root: Path, split: str, names: list[str], captions_per_image: int = 2) -> Path:
    """A COCO-style folder: ``annotations/captions_<split>.json`` and ``<split>/`` images."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir()
    images, annotations = [], []
    for index, name in enumerate(names):
        write_image(root / split / name, seed=index)
        images.append({"id": 100 + index, "file_name": name, "height": 30, "width": 40})
        annotations += [
            {"id": 1000 + 10 * index + k, "image_id": 100 + index, "caption": f"Image {index} caption {k}."}
            for k in range(captions_per_image)
        ]
    payload = {"info": {}, "licenses": [], "images": images, "annotations": annotations}
    (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(payload))
    return root


def write_jsonl(root: Path, file_name: str, count: int) -> Path:
    """``root/file_name`` with ``count`` records whose images sit in ``root/pictures/``."""
    (root / "pictures").mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        write_image(root / "pictures" / f"p{index}.png", seed=index)
        records.append({"image": f"pictures/p{index}.png", "captions": [f"picture {index}", f"image {index}"]})
    (root / file_name).write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return root
