"""SegmentationModule: the LightningModule for dense outputs (SegNet and any encoder + the segnet decoder).

It takes plain config (names and numbers). The model is built in ``setup`` (see ``lit.base``): from
the checkpoint the run starts from, else from that config and the datamodule's classes; the header
(model config, labels with class names, palette, ignore index and loss weights, preprocessing,
validation metrics) is written into every checkpoint, so that a checkpoint alone drives
``multimodal_s2s.Segmenter``, ``mms2s segment`` and ``mms2s export``.

Batches are dicts: ``images`` float (B, 3, H, W), ``masks`` long (B, H, W) (ignore index = not a
class), ``ids`` list[str] (the image files, or the generated scenes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from multimodal_s2s.checkpoint import CheckpointHeader, Task
from multimodal_s2s.lit.base import SuiteModule, evaluation_loss_means
from multimodal_s2s.lit.optim import check_optimizer_options
from multimodal_s2s.lit.transfer import check_transfer_options
from multimodal_s2s.losses import segmentation_loss
from multimodal_s2s.metrics.segmentation import SUMMARY_KEYS, SegmentationMetrics
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.registry import encoder_entry

CLASS_BALANCING = ("median_frequency",)
SPLITS = ("val", "test")


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


class SegmentationModule(SuiteModule):
    """Per-pixel loss (ignore index, optional class balancing); confusion-matrix metrics in
    validation and test (``val/miou``, ``test/iou/<class>``...); label maps in predict.

    Args:
        encoder, decoder, encoder_args, decoder_args: as for ``multimodal_s2s.create_model``
            (``encoder_args.pretrained_path`` loads backbone weights from a local file or a suite checkpoint).
        lr, weight_decay, warmup_steps: AdamW with linear warmup, then cosine decay to 0.
        class_balancing: None, or "median_frequency" (loss weights from the training masks, as in SegNet).
        freeze_encoder_epochs, encoder_lr_scale: transfer learning (``lit.transfer``): the encoder frozen for
            the first N epochs; its learning rate ``lr * encoder_lr_scale``.
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
        freeze_encoder_epochs: int = 0,
        encoder_lr_scale: float = 1.0,
    ):
        super().__init__()
        if class_balancing is not None and class_balancing not in CLASS_BALANCING:
            raise ValueError(f"unknown class_balancing {class_balancing!r}; choose None or one of {CLASS_BALANCING}")
        check_optimizer_options(lr, weight_decay, warmup_steps)
        check_transfer_options(freeze_encoder_epochs, encoder_lr_scale)
        encoder_entry(encoder)  # an unknown name fails here, in one line, before any data is read
        self.loss_function = segmentation_loss(loss)
        self.save_hyperparameters()
        self.split_metrics = nn.ModuleDict()
        self.loss_means = evaluation_loss_means()

    def header_from_data(self) -> CheckpointHeader:
        data, hp = self.trainer.datamodule, self.hparams
        config = ModelConfig(hp.encoder, hp.decoder, dict(hp.encoder_args or {}), dict(hp.decoder_args or {}),
                             num_classes=data.num_classes)
        labels = data.labels
        if hp.class_balancing == "median_frequency":
            weights = median_frequency_weights(*data.class_pixel_counts())
            labels = replace(labels, class_weights=tuple(float(w) for w in weights))
        return CheckpointHeader(Task.SEGMENTATION, config, data.description, data.preprocessing, labels=labels)

    def build(self, header: CheckpointHeader) -> None:
        """Model, metrics and loss weights from ``header``."""
        self.model = build_model(header.model)
        labels = header.labels
        self.split_metrics = nn.ModuleDict(
            {split: SegmentationMetrics(len(labels.class_names), labels.ignore_index) for split in SPLITS}
        )
        weights = labels.class_weights
        self.register_buffer("class_weights", None if weights is None else torch.tensor(weights), persistent=False)
        if weights is not None:
            named = ", ".join(f"{name} {w:.3f}" for name, w in zip(labels.class_names, weights, strict=True))
            rank_zero_info(f"median-frequency class weights: {named}")

    def forward(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) -> logits (B, num_classes, H, W)."""
        return self.model(images)

    def model_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """-> (the loss over the labelled pixels, logits (B, C, H, W))."""
        logits = self.model(batch["images"])  # (B, C, H, W)
        masks = batch["masks"]  # (B, H, W), or (B, H0max, W0max) with native-size scoring
        if "mask_sizes" in batch:
            logits = at_mask_sizes(logits, batch["mask_sizes"], masks.shape[-2:])
        ignore_index = self.header.labels.ignore_index
        if not (masks != ignore_index).any():  # a mean over no pixels would be NaN
            return logits.sum() * 0.0, logits
        weight = None if self.class_weights is None else self.class_weights.float()
        return self.loss_function(logits, masks, ignore_index, weight), logits

    def _loss_weight(self, masks: Tensor) -> float:
        """A batch's weight in the split's mean loss: the labelled pixels of masks (B, H, W), each counted
        with its class weight. For cross-entropy this is what its mean divides by, so the split's loss is
        the same however it is batched or split over ranks; Dice and focal batches are weighted alike."""
        labelled = masks[masks != self.header.labels.ignore_index]
        return float(labelled.numel() if self.class_weights is None else self.class_weights[labelled].sum())

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self.model_step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["images"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: dict[str, Tensor], split: str) -> None:
        loss, logits = self.model_step(batch)
        self.loss_means[split].update(loss.detach(), weight=self._loss_weight(batch["masks"]))
        self.log(f"{split}/loss", self.loss_means[split], prog_bar=True)
        self.split_metrics[split].update(logits.detach(), batch["masks"])

    def on_validation_epoch_end(self) -> None:
        scores = self.split_metrics["val"].compute()  # reduced over the ranks: the same on every rank
        for key in SUMMARY_KEYS:
            self.log(f"val/{key}", scores[key], prog_bar=key == "miou", sync_dist=True)
        self.split_metrics["val"].reset()

    def on_test_epoch_end(self) -> None:
        """Logs test/global_acc etc. and test/iou/<class>, and prints the per-class IoU table."""
        scores = self.split_metrics["test"].compute()
        for key in SUMMARY_KEYS:
            self.log(f"test/{key}", scores[key], sync_dist=True)
        class_names = self.header.labels.class_names
        for name, iou in zip(class_names, scores["iou"], strict=True):
            self.log(f"test/iou/{name}", iou, sync_dist=True)
        rank_zero_info(per_class_table(list(class_names), scores))
        self.split_metrics["test"].reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """One record per image: its id and its (H, W) uint8 label map at the network's input size."""
        labels = self.model(batch["images"]).argmax(1).to(torch.uint8).cpu().numpy()  # (B, H, W)
        return [{"id": image_id, "labels": label_map} for image_id, label_map in zip(batch["ids"], labels, strict=True)]


def at_mask_sizes(logits: Tensor, sizes: Tensor, padded: tuple[int, int]) -> Tensor:
    """logits (B, C, H, W) -> (B, C, *padded): example i resized (bilinear) to its mask's size ``sizes[i]``
    (H0, W0), then padded with zeros where its mask is padded with the ignore index
    (``data.segmentation.native_size_collate``)."""
    rows = []
    for row, (height, width) in zip(logits, sizes.tolist(), strict=True):
        resized = nn.functional.interpolate(row[None], size=(height, width), mode="bilinear", align_corners=False)
        rows.append(nn.functional.pad(resized, (0, padded[1] - width, 0, padded[0] - height)))
    return torch.cat(rows)


def per_class_table(class_names: list[str], scores: dict[str, Tensor]) -> str:
    """A plain-text table: one row per class (IoU, accuracy), then the three summary scores."""
    width = max(len(name) for name in [*class_names, "class_avg_acc"])
    lines = [f"{'class':<{width}}  {'IoU':>6}  {'acc':>6}"]
    for name, iou, accuracy in zip(class_names, scores["iou"].tolist(), scores["accuracy"].tolist(), strict=True):
        lines.append(f"{name:<{width}}  {iou:6.3f}  {accuracy:6.3f}")
    lines += [f"{key:<{width}}  {float(scores[key]):6.3f}" for key in SUMMARY_KEYS]
    return "\n".join(lines)
