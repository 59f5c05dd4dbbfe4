"""Segmentation metrics against a confusion matrix computed by hand, and median-frequency weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from multimodal_s2s.lit.segmentation import median_frequency_weights, per_class_table
from multimodal_s2s.metrics.segmentation import SegmentationMetrics, scores_from_confusion

IGNORE = 255
# 4 classes; class 3 appears nowhere; one pixel is ignored.
TARGET = torch.tensor([[[0, 0, 1], [1, 2, IGNORE]]])
PREDICTED = torch.tensor([[[0, 1, 1], [1, 0, 2]]])
# (ground truth, prediction) pairs: (0,0) (0,1) (1,1) (1,1) (2,0); rows = ground truth.
HAND_CONFUSION = [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_confusion_and_scores_match_the_hand_computation():
    metrics = SegmentationMetrics(num_classes=4, ignore_index=IGNORE)
    metrics.update(PREDICTED, TARGET)
    assert metrics.confusion.tolist() == HAND_CONFUSION
    scores = metrics.compute()
    assert scores["global_acc"].item() == pytest.approx(3 / 5)
    assert scores["class_avg_acc"].item() == pytest.approx((1 / 2 + 2 / 2 + 0 / 1) / 3)
    # IoU = TP / (GT + predicted - TP): 1/(2+2-1), 2/(2+3-2), 0/(1+0-0); class 3 has an empty union.
    assert scores["iou"][:3].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(scores["iou"][3].item()) and math.isnan(scores["accuracy"][3].item())
    assert scores["miou"].item() == pytest.approx(1 / 3)


def test_a_class_predicted_but_absent_counts_in_miou_only():
    scores = scores_from_confusion(torch.tensor([[3, 1], [0, 0]]))  # class 1 predicted once, never true
    assert scores["iou"].tolist() == pytest.approx([3 / 4, 0.0])
    assert scores["miou"].item() == pytest.approx(3 / 8)
    assert scores["class_avg_acc"].item() == pytest.approx(3 / 4)


def test_logits_batches_accumulate_like_one_update():
    logits = torch.randn(4, 3, 5, 6)
    target = torch.randint(0, 3, (4, 5, 6))
    target[0, 0, :] = IGNORE
    whole, split = SegmentationMetrics(3, IGNORE), SegmentationMetrics(3, IGNORE)
    whole.update(logits, target)
    split.update(logits[:2], target[:2])
    split.update(logits[2:], target[2:])
    assert torch.equal(whole.confusion, split.confusion)
    assert whole.confusion.sum() == target.numel() - 6  # the ignored row is not counted
    labels = logits.argmax(1)
    assert whole.confusion.trace() == ((labels == target) & (target != IGNORE)).sum()


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        SegmentationMetrics(3).update(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 5, dtype=torch.long))


def test_median_frequency_weights_by_hand():
    # class 0: 600 px in images totalling 1000 px -> f 0.6; class 1: 100 / 500 -> 0.2; class 2: 300 / 1000 -> 0.3;
    # class 3 absent. median(0.6, 0.2, 0.3) = 0.3.
    weights = median_frequency_weights(np.array([600, 100, 300, 0]), np.array([1000, 500, 1000, 0]))
    assert weights.tolist() == pytest.approx([0.5, 1.5, 1.0, 0.0])


def test_per_class_table_lists_every_class():
    scores = scores_from_confusion(torch.tensor([[2, 0], [1, 1]]))
    table = per_class_table(["road", "car"], scores)
    assert "road" in table and "car" in table and "0.500" in table and table.count("\n") == 5
