"""SegmentationModule: the LightningModule for dense outputs (SegNet and any encoder + the segnet decoder).

It takes plain config (names and numbers). The model is built in ``setup`` from that config and
the datamodule's class count; the model config, class names, palette, ignore index and the
preprocessing are written into every checkpoint (see checkpoint.py), so that a checkpoint alone
drives ``mms2s segment`` and ``mms2s export``.

Batches are dicts: ``images`` float (B, 3, H, W), ``masks`` long (B, H, W) (ignore index = not a class).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from multimodal_s2s.checkpoint import CHECKPOINT_KEY
from multimodal_s2s.lit.optim import adamw_warmup_cosine
from multimodal_s2s.losses import segmentation_loss
from multimodal_s2s.metrics.segmentation import SUMMARY_KEYS, SegmentationMetrics
from multimodal_s2s.models import ModelConfig, build_model

TASK = "segmentation"
CLASS_BALANCING = ("median_frequency",)


def median_frequency_weights(class_pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """Median-frequency balancing (Eigen and Fergus 2015, used by SegNet): weight_c = median(f) / f_c,
    f_c = pixels of class c / pixels of the images in which c appears. Absent classes get weight 0."""
    present = (class_pixels > 0) & (image_pixels > 0)
    if not present.any():
        raise ValueError("median-frequency balancing needs labelled pixels, and the training masks have none")
    frequency = np.zeros(len(class_pixels), dtype=np.float64)
    frequency[present] = class_pixels[present] / image_pixels[present]
    weights = np.zeros_like(frequency)
    weights[present] = np.median(frequency[present]) / frequency[present]
    return weights


class SegmentationModule(L.LightningModule):
    """Per-pixel loss (ignore index, optional class balancing); confusion-matrix metrics.

    Args:
        encoder, decoder, encoder_args, decoder_args: as for ``multimodal_s2s.create_model``
            (``encoder_args.pretrained_path`` loads backbone weights from a local file).
        lr, weight_decay, warmup_steps: AdamW with linear warmup, then cosine decay to 0.
        class_balancing: None, or "median_frequency" (loss weights from the training masks, as in SegNet).
        loss: "cross_entropy", "dice", "focal", or several joined by '+' (their sum), e.g.
            "cross_entropy+dice" (see multimodal_s2s/losses.py; each takes the class weights).
    """

    def __init__(
        self,
        encoder: str,
        decoder: str = "segnet",
        encoder_args: dict[str, Any] | None = None,
        decoder_args: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        class_balancing: str | None = None,
        loss: str = "cross_entropy",
    ):
        super().__init__()
        if class_balancing is not None and class_balancing not in CLASS_BALANCING:
            raise ValueError(f"unknown class_balancing {class_balancing!r}; choose None or one of {CLASS_BALANCING}")
        self.loss_function = segmentation_loss(loss)
        self.save_hyperparameters()
        self.model = None
        self.meta: dict[str, Any] = {}
        self.val_metrics: SegmentationMetrics | None = None
        self.test_metrics: SegmentationMetrics | None = None

    def setup(self, stage: str) -> None:
        if self.model is not None:
            return
        data = self.trainer.datamodule
        config = ModelConfig(
            self.hparams.encoder, self.hparams.decoder, dict(self.hparams.encoder_args or {}),
            dict(self.hparams.decoder_args or {}), num_classes=data.num_classes,
        )  # fmt: skip
        weights = None
        if self.hparams.class_balancing == "median_frequency":
            weights = median_frequency_weights(*data.class_pixel_counts()).tolist()
        meta = {
            "task": TASK,
            "model": config.to_dict(),
            "class_names": list(data.class_names),
            "palette": [list(colour) for colour in data.palette],
            "ignore_index": data.hparams.ignore_index,
            "preprocess": data.preprocess,
            "class_weights": weights,
        }
        self._build(meta)

    def _build(self, meta: dict[str, Any]) -> None:
        """Model, metrics and loss weights from checkpoint-style ``meta``."""
        self.meta = meta
        self.model = build_model(ModelConfig.from_dict(meta["model"]))
        num_classes, ignore_index = meta["model"]["num_classes"], meta["ignore_index"]
        self.val_metrics = SegmentationMetrics(num_classes, ignore_index)
        self.test_metrics = SegmentationMetrics(num_classes, ignore_index)
        weights = meta.get("class_weights")
        self.register_buffer("class_weights", None if weights is None else torch.tensor(weights), persistent=False)
        if weights is not None:
            named = ", ".join(f"{name} {w:.3f}" for name, w in zip(meta["class_names"], weights, strict=True))
            rank_zero_info(f"median-frequency class weights: {named}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.meta

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """``SegmentationModule.load_from_checkpoint`` (no trainer, no data): rebuild from the stored meta."""
        if self.model is None:
            self._build(checkpoint[CHECKPOINT_KEY])

    def forward(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) -> logits (B, num_classes, H, W)."""
        return self.model(images)

    def model_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """-> (the loss over the labelled pixels, logits (B, C, H, W))."""
        logits = self.model(batch["images"])  # (B, C, H, W)
        masks = batch["masks"]  # (B, H, W)
        ignore_index = self.meta["ignore_index"]
        if not (masks != ignore_index).any():  # a mean over no pixels would be NaN
            return logits.sum() * 0.0, logits
        weight = None if self.class_weights is None else self.class_weights.float()
        return self.loss_function(logits, masks, ignore_index, weight), logits

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self.model_step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["images"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "test", self.test_metrics)

    def _evaluation_step(self, batch: dict[str, Tensor], split: str, metrics: SegmentationMetrics) -> None:
        loss, logits = self.model_step(batch)
        self.log(f"{split}/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["images"].shape[0])
        metrics.update(logits.detach(), batch["masks"])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        for key in SUMMARY_KEYS:
            self.log(f"val/{key}", scores[key], prog_bar=key == "miou")
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:
        """Logs test/global_acc etc. and test/iou/<class>, and prints the per-class IoU table."""
        scores = self.test_metrics.compute()
        for key in SUMMARY_KEYS:
            self.log(f"test/{key}", scores[key])
        for name, iou in zip(self.meta["class_names"], scores["iou"], strict=True):
            self.log(f"test/iou/{name}", iou)
        rank_zero_info(per_class_table(self.meta["class_names"], scores))
        self.test_metrics.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        total = int(self.trainer.estimated_stepping_batches)
        return adamw_warmup_cosine(self.model.parameters(), hp.lr, hp.weight_decay, hp.warmup_steps, total)


def per_class_table(class_names: list[str], scores: dict[str, Tensor]) -> str:
    """A plain-text table: one row per class (IoU, accuracy), then the three summary scores."""
    width = max(len(name) for name in [*class_names, "class_avg_acc"])
    lines = [f"{'class':<{width}}  {'IoU':>6}  {'acc':>6}"]
    for name, iou, accuracy in zip(class_names, scores["iou"].tolist(), scores["accuracy"].tolist(), strict=True):
        lines.append(f"{name:<{width}}  {iou:6.3f}  {accuracy:6.3f}")
    lines += [f"{key:<{width}}  {float(scores[key]):6.3f}" for key in SUMMARY_KEYS]
    return "\n".join(lines)
