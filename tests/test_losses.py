"""Segmentation losses: Dice and focal equal segmentation_models_pytorch's (multiclass mode), the ignore
index and class weights act as documented, and names select and sum them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from multimodal_s2s.losses import cross_entropy_loss, dice_loss, focal_loss, segmentation_loss

CLASSES, IGNORE = 4, 255


def _batch(ignore_fraction: float = 0.2, absent_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (2, K, 6, 7), targets (2, 6, 7) with some ignored pixels (and one class absent when asked)."""
    logits = torch.randn(2, CLASSES, 6, 7) * 3
    targets = torch.randint(0, CLASSES, (2, 6, 7))
    if absent_class is not None:
        targets[targets == absent_class] = (absent_class + 1) % CLASSES
    targets[torch.rand(targets.shape) < ignore_fraction] = IGNORE
    return logits, targets


@pytest.fixture(scope="module")
def smp_losses():
    return pytest.importorskip("segmentation_models_pytorch.losses", reason="smp (a benchmark extra) is not installed")


@pytest.mark.parametrize("absent_class", [None, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_dice_equals_smp(smp_losses, absent_class, weighted):
    logits, targets = _batch(absent_class=absent_class)
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0]) if weighted else None
    reference = smp_losses.DiceLoss(
        "multiclass", from_logits=True, ignore_index=IGNORE, class_weights=None if weight is None else weight.tolist()
    )
    torch.testing.assert_close(dice_loss(logits, targets, IGNORE, weight), reference(logits, targets))


@pytest.mark.parametrize("weighted", [False, True])
def test_focal_equals_smp(smp_losses, weighted):
    logits, targets = _batch()
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0]) if weighted else None
    reference = smp_losses.FocalLoss(
        "multiclass", ignore_index=IGNORE, class_weights=None if weight is None else weight.tolist()
    )
    torch.testing.assert_close(focal_loss(logits, targets, IGNORE, weight), reference(logits, targets))


@pytest.mark.parametrize("loss", [dice_loss, focal_loss, cross_entropy_loss])
def test_ignored_pixels_do_not_count(loss):
    logits, targets = _batch()
    changed = logits.clone()
    changed[(targets == IGNORE).unsqueeze(1).expand_as(logits)] = 100.0  # anything at ignored pixels
    assert (targets == IGNORE).any()
    torch.testing.assert_close(loss(changed, targets, IGNORE), loss(logits, targets, IGNORE))


def test_dice_and_focal_are_small_for_confident_right_answers_and_large_for_wrong_ones():
    targets = torch.randint(0, CLASSES, (2, 6, 7))
    right = F.one_hot(targets, CLASSES).permute(0, 3, 1, 2).float() * 40 - 20  # (B, K, H, W)
    for loss in (dice_loss, focal_loss):
        assert float(loss(right, targets, IGNORE)) < 1e-3
        assert float(loss(-right, targets, IGNORE)) > 0.2


def test_focal_without_labelled_pixels_is_zero_not_nan():
    logits = torch.randn(1, CLASSES, 3, 3, requires_grad=True)
    loss = focal_loss(logits, torch.full((1, 3, 3), IGNORE), IGNORE)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_names_select_and_sum_losses():
    logits, targets = _batch()
    expected = cross_entropy_loss(logits, targets, IGNORE) + dice_loss(logits, targets, IGNORE)
    torch.testing.assert_close(segmentation_loss("cross_entropy+dice")(logits, targets, IGNORE), expected)
    assert segmentation_loss("focal") is focal_loss


@pytest.mark.parametrize("name", ["dice_loss", "dice+dice", "", "cross_entropy+"])
def test_unknown_loss_names_fail_in_one_line(name):
    with pytest.raises(ValueError, match="unknown loss") as error:
        segmentation_loss(name)
    assert "\n" not in str(error.value) and "cross_entropy, dice, focal" in str(error.value)
