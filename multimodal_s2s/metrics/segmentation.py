"""Segmentation metrics from one confusion matrix (torchmetrics): the three the SegNet paper reports.

    global_acc: correctly labelled pixels / labelled pixels.
    class_avg_acc: the mean over classes of per-class recall (correct / ground-truth pixels).
    miou: the mean over classes of IoU = TP / (TP + FP + FN).
Pixels whose target is the ignore index count nowhere. A class with no ground-truth pixel is left
out of class_avg_acc, and one with an empty union (neither in the targets nor predicted) out of
miou, as in the usual benchmark code; all values are fractions in 0..1.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_confusion_matrix

SUMMARY_KEYS = ("global_acc", "class_avg_acc", "miou")


def scores_from_confusion(confusion: Tensor) -> dict[str, Tensor]:
    """confusion (C, C), rows = ground truth, columns = prediction -> the summary scores and per-class
    ``iou`` and ``accuracy`` (C,) (NaN where a class is left out, see the module docstring)."""
    confusion = confusion.double()
    true_positives = confusion.diagonal()  # (C,)
    targets = confusion.sum(1)  # (C,) ground-truth pixels per class
    predictions = confusion.sum(0)  # (C,)
    union = targets + predictions - true_positives
    nan = torch.tensor(float("nan"), dtype=confusion.dtype, device=confusion.device)
    accuracy = torch.where(targets > 0, true_positives / targets.clamp_min(1), nan)
    iou = torch.where(union > 0, true_positives / union.clamp_min(1), nan)
    total = confusion.sum()
    return {
        "global_acc": true_positives.sum() / total if total > 0 else nan,
        "class_avg_acc": accuracy.nanmean(),
        "miou": iou.nanmean(),
        "iou": iou,
        "accuracy": accuracy,
    }


class SegmentationMetrics(Metric):
    """Accumulates a (C, C) confusion matrix over batches; synced across processes by summing.

    ``update(logits (B, C, H, W) or predicted labels (B, H, W), target (B, H, W))``;
    ``compute() -> dict`` with global_acc, class_avg_acc, miou (scalars) and iou, accuracy (C,).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.dim() == target.dim() + 1:
            preds = preds.argmax(1)  # logits (B, C, H, W) -> labels (B, H, W)
        if preds.shape != target.shape:
            raise ValueError(f"predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in shape")
        self.confusion += multiclass_confusion_matrix(
            preds, target, self.num_classes, ignore_index=self.ignore_index, validate_args=False
        )

    def compute(self) -> dict[str, Tensor]:
        return scores_from_confusion(self.confusion)
