"""Per-pixel segmentation losses: cross-entropy, Dice and focal, multi-class, with an ignore index and class weights.

Shapes: logits (B, K, H, W) float, targets (B, H, W) long (class ids, or ``ignore_index`` for unlabelled
pixels), weight (K,) float or None. Each loss returns a scalar.

Dice and focal follow segmentation_models_pytorch's DiceLoss and FocalLoss in multiclass mode
(``tests/test_losses.py`` checks them against smp numerically), without making smp a dependency:

- Dice: softmax probabilities; per class c over the labelled pixels of the batch,
  loss_c = 1 - 2 * sum(p_c * y_c) / max(sum(p_c) + sum(y_c), eps), set to 0 for classes absent from
  the targets; the mean over the K classes (weighted when ``weight`` is given).
- Focal (Lin et al. 2017): one-vs-rest, each class's sigmoid focal loss (torchvision's
  ``sigmoid_focal_loss``, gamma 2, no alpha) averaged over the labelled pixels, then the mean over
  the K classes (weighted when ``weight`` is given).

``segmentation_loss("cross_entropy+dice")`` sums several of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.ops import sigmoid_focal_loss

DICE_EPS = 1e-7
FOCAL_GAMMA = 2.0

#: A loss: (logits (B, K, H, W), targets (B, H, W), ignore_index, weight (K,) or None) -> scalar.
LossFunction = Callable[[Tensor, Tensor, int, Tensor | None], Tensor]


def cross_entropy_loss(logits: Tensor, targets: Tensor, ignore_index: int, weight: Tensor | None = None) -> Tensor:
    """Weighted cross-entropy averaged over the labelled pixels (PyTorch's weighted mean)."""
    return F.cross_entropy(logits.float(), targets, weight=weight, ignore_index=ignore_index)


def dice_loss(logits: Tensor, targets: Tensor, ignore_index: int, weight: Tensor | None = None) -> Tensor:
    """Soft multi-class Dice loss over the labelled pixels of the batch (see the module docstring)."""
    num_classes = logits.shape[1]
    probabilities = logits.float().log_softmax(dim=1).exp().flatten(2)  # (B, K, N)
    labelled = (targets != ignore_index).flatten(1)  # (B, N)
    probabilities = probabilities * labelled.unsqueeze(1)
    one_hot = _one_hot(targets.flatten(1), labelled, num_classes)  # (B, K, N)
    intersection = (probabilities * one_hot).sum(dim=(0, 2))  # (K,)
    cardinality = (probabilities + one_hot).sum(dim=(0, 2))  # (K,)
    per_class = 1.0 - 2.0 * intersection / cardinality.clamp_min(DICE_EPS)
    per_class = per_class * (one_hot.sum(dim=(0, 2)) > 0)  # absent classes contribute 0
    return _class_mean(per_class, weight)


def focal_loss(logits: Tensor, targets: Tensor, ignore_index: int, weight: Tensor | None = None) -> Tensor:
    """One-vs-rest sigmoid focal loss over the labelled pixels (see the module docstring)."""
    num_classes = logits.shape[1]
    labelled = targets != ignore_index  # (B, H, W)
    pixel_logits = logits.float().permute(0, 2, 3, 1)[labelled]  # (N, K)
    one_hot = F.one_hot(targets[labelled], num_classes).to(pixel_logits.dtype)  # (N, K)
    per_pixel = sigmoid_focal_loss(pixel_logits, one_hot, alpha=-1, gamma=FOCAL_GAMMA, reduction="none")
    per_class = per_pixel.sum(dim=0) / max(pixel_logits.shape[0], 1)  # (K,)
    return _class_mean(per_class, weight)


LOSSES: dict[str, LossFunction] = {"cross_entropy": cross_entropy_loss, "dice": dice_loss, "focal": focal_loss}


def segmentation_loss(name: str) -> LossFunction:
    """The loss called ``name``: one of LOSSES, or several joined by '+' (their sum), e.g. "cross_entropy+dice"."""
    parts = name.split("+")
    unknown = [part for part in parts if part not in LOSSES]
    if unknown or len(set(parts)) != len(parts):
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)} or several joined by '+'")
    functions = [LOSSES[part] for part in parts]
    if len(functions) == 1:
        return functions[0]

    def summed(logits: Tensor, targets: Tensor, ignore_index: int, weight: Tensor | None = None) -> Tensor:
        return sum(function(logits, targets, ignore_index, weight) for function in functions)

    return summed


def _one_hot(targets: Tensor, labelled: Tensor, num_classes: int) -> Tensor:
    """targets (B, N) long, labelled (B, N) bool -> (B, K, N) float, all zero at unlabelled pixels."""
    safe = torch.where(labelled, targets, torch.zeros_like(targets))  # the ignore index may be >= K
    return F.one_hot(safe, num_classes).permute(0, 2, 1).float() * labelled.unsqueeze(1)


def _class_mean(per_class: Tensor, weight: Tensor | None) -> Tensor:
    """(K,) -> the mean over classes, or sum(weight * per_class) / sum(weight)."""
    if weight is None:
        return per_class.mean()
    weight = weight.to(per_class)
    return (per_class * weight).sum() / weight.sum()
