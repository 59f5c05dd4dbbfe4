"""Tiny recipes of each task (the embedded data, or tone manifests for ASR), written as YAML like the
real ones under tasks/, so that tests drive ``mms2s fit|validate|test|predict`` end to end in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from asr_fixtures import TINY_DECODER_ARGS as ASR_DECODER_ARGS
from asr_fixtures import TINY_ENCODER_ARGS as ASR_ENCODER_ARGS
from asr_fixtures import write_tone_manifest
from captioning_fixtures import TINY_DECODER_ARGS as CAPTION_DECODER_ARGS
from captioning_fixtures import TINY_ENCODER_ARGS as CAPTION_ENCODER_ARGS
from captioning_fixtures import TINY_IMAGE_SIZE
from PIL import Image

TASKS = ("captioning", "asr", "segmentation", "translation")
#: The metric each tiny recipe monitors, and the size of the split that test / predict read.
MONITOR = {"captioning": "val/bleu4", "asr": "val/wer", "segmentation": "val/miou", "translation": "val/exact_match"}
EVALUATION_SIZE = {"captioning": 8, "asr": 4, "segmentation": 8, "translation": 64}
SEQ2SEQ = "multimodal_s2s.lit.seq2seq.Seq2SeqModule"


def _model_and_data(task: str, folder: Path) -> tuple[dict, dict]:
    if task == "captioning":
        model = {"encoder": "cnn", "decoder": "transformer", "encoder_args": CAPTION_ENCODER_ARGS,
                 "decoder_args": CAPTION_DECODER_ARGS["transformer"], "metrics": ["bleu"], "beam_size": 2,
                 "max_length": 8, "warmup_steps": 2}
        size = [TINY_IMAGE_SIZE, TINY_IMAGE_SIZE]
        data = {"format": "shapes", "image_size": size, "shapes_image_size": TINY_IMAGE_SIZE, "batch_size": 16,
                "shapes_train_size": 64, "shapes_val_size": 8}
        return {"class_path": SEQ2SEQ, "init_args": model}, {
            "class_path": "multimodal_s2s.data.captioning.CaptioningDataModule", "init_args": data}
    if task == "asr":
        model = {"encoder": "audio_transformer_tiny", "decoder": "transformer", "encoder_args": ASR_ENCODER_ARGS,
                 "decoder_args": ASR_DECODER_ARGS, "metrics": ["wer"], "beam_size": 1, "max_length": 24,
                 "ctc_weight": 0.3, "warmup_steps": 2,
                 "spec_augment": {"num_freq_masks": 0, "num_time_masks": 0}}
        manifests = {split: str(write_tone_manifest(folder / "tones", count, seed, split))
                     for split, count, seed in (("train", 16, 0), ("val", 4, 1), ("test", 4, 2))}
        data = {"format": "manifest", "root": manifests["train"], "val_root": manifests["val"],
                "test_root": manifests["test"], "batch_size": 8}
        return {"class_path": SEQ2SEQ, "init_args": model}, {
            "class_path": "multimodal_s2s.data.asr.ASRDataModule", "init_args": data}
    if task == "segmentation":
        model = {"encoder": "segnet_basic", "decoder": "segnet", "encoder_args": {"channels": 8, "kernel_size": 3},
                 "decoder_args": {"kernel_size": 3}, "warmup_steps": 2}
        data = {"format": "shapes", "image_size": [32, 32], "augment": False, "batch_size": 8,
                "shapes_train_size": 32, "shapes_val_size": 8}
        return {"class_path": "multimodal_s2s.lit.segmentation.SegmentationModule", "init_args": model}, {
            "class_path": "multimodal_s2s.data.segmentation.SegmentationDataModule", "init_args": data}
    model = {"encoder": "text_lstm_tiny", "decoder": "rnn_attention", "encoder_args": {"embed_dim": 16,
             "hidden_size": 32}, "decoder_args": {"embed_dim": 16, "hidden_size": 32}, "lr": 0.01,
             "warmup_steps": 2, "label_smoothing": 0.0, "metrics": ["exact_match"], "beam_size": 1,
             "max_length": 12}
    data = {"format": "dates", "tokenizer": "char", "batch_size": 32, "dates_train_size": 320, "dates_val_size": 64}
    return {"class_path": SEQ2SEQ, "init_args": model}, {
        "class_path": "multimodal_s2s.data.translation.TranslationDataModule", "init_args": data}


def write_recipe(task: str, folder: Path, max_epochs: int = 1, every_n_train_steps: int | None = None) -> Path:
    """``folder/<task>.yaml``: a tiny recipe (2 to 10 steps an epoch) writing its runs under
    ``folder/runs/<task>``; ``every_n_train_steps``: also save ``last.ckpt`` that often."""
    model, data = _model_and_data(task, folder)
    checkpoint = {"monitor": MONITOR[task], "mode": "min" if task == "asr" else "max",
                  "filename": "best-{step:05d}", "save_last": True}
    if every_n_train_steps is not None:
        checkpoint["every_n_train_steps"] = every_n_train_steps
    recipe = {
        "seed_everything": 0,
        "model": model,
        "data": data,
        "trainer": {
            "max_epochs": max_epochs, "accelerator": "cpu", "devices": 1,
            "default_root_dir": str(folder / "runs" / task),
            "log_every_n_steps": 1, "enable_progress_bar": False, "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": checkpoint}],
        },
    }
    path = folder / f"{task}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def write_camvid(root: Path, images: int = 6) -> None:
    """A CamVid-shaped list dataset: ``images`` random photos with masks of the 11 classes and void (11)."""
    rng = np.random.default_rng(0)
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(f"class{k}" for k in range(11)))
    for split, names in (("train", range(4)), ("val", range(4, images))):
        (root / split).mkdir()
        (root / f"{split}annot").mkdir()
        for k in names:
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / split / f"{k}.jpg")
            Image.fromarray(rng.integers(0, 12, (48, 64), dtype=np.uint8)).save(root / f"{split}annot" / f"{k}.png")
        lines = [f"{split}/{k}.jpg {split}annot/{k}.png" for k in names]
        (root / f"{split}.txt").write_text("\n".join(lines))
