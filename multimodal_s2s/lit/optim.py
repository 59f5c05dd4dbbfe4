"""The optimizer and learning-rate schedule of every task's LightningModule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

#: Lightning's ways of clipping gradients (``trainer.gradient_clip_algorithm``).
CLIP_ALGORITHMS = ("norm", "value")


def check_optimizer_options(lr: float, weight_decay: float, warmup_steps: int) -> None:
    """A ValueError in one line naming the recipe key for a value that AdamW or the schedule cannot use
    (before any data is read, instead of torch.optim's traceback at the first step)."""
    check_number("model.init_args.lr", lr, lowest=0.0, inclusive=False)
    check_number("model.init_args.weight_decay", weight_decay, lowest=0.0)
    check_count("model.init_args.warmup_steps", warmup_steps)


def check_label_smoothing(label_smoothing: float) -> None:
    """``label_smoothing`` in [0, 1): 1 would train towards the uniform distribution."""
    check_number("model.init_args.label_smoothing", label_smoothing, lowest=0.0)
    if label_smoothing >= 1:
        raise ValueError(f"model.init_args.label_smoothing must be in [0, 1), got {label_smoothing!r}")


def check_gradient_clipping(clip_val: float | None, algorithm: str | None) -> None:
    """``trainer.gradient_clip_val`` None or a finite number >= 0 (0: no clipping; a negative one would
    flip the gradients' sign), ``trainer.gradient_clip_algorithm`` one of Lightning's."""
    if clip_val is not None and not (_is_number(clip_val) and clip_val >= 0):
        expected = "a finite number >= 0 (0 or null: no clipping)"
        raise ValueError(f"trainer.gradient_clip_val must be {expected}, got {clip_val!r}")
    if algorithm is not None and str(algorithm).lower() not in CLIP_ALGORITHMS:  # Lightning ignores case
        choices = ", ".join(CLIP_ALGORITHMS)
        raise ValueError(f"trainer.gradient_clip_algorithm must be one of {choices}, got {algorithm!r}")


def check_number(key: str, value: object, lowest: float, inclusive: bool = True) -> None:
    """ValueError naming the recipe ``key`` unless ``value`` is a finite number >= ``lowest`` (> when not
    ``inclusive``)."""
    if not (_is_number(value) and (value >= lowest if inclusive else value > lowest)):
        bound = f"{'>=' if inclusive else '>'} {lowest:g}"
        raise ValueError(f"{key} must be a finite number {bound}, got {value!r}")


def check_count(key: str, value: object) -> None:
    """ValueError naming the recipe ``key`` unless ``value`` is a whole number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be an integer >= 0, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def adamw_warmup_cosine(
    parameters: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int,
    scaled: Iterable[nn.Parameter] = (),
    lr_scale: float = 1.0,
) -> dict[str, Any]:
    """AdamW with weight decay on matrices and kernels only (not on biases and norms), stepped every batch
    by ``warmup_cosine``; the dict that ``LightningModule.configure_optimizers`` returns. The ``scaled``
    parameters among ``parameters`` (e.g. the encoder's) get groups of their own at ``lr * lr_scale``."""
    scaled_ids = {id(p) for p in scaled}
    parameters = list(parameters)
    groups = []
    for group_lr, members in ((lr, False), (lr * lr_scale, True)):
        params = [p for p in parameters if (id(p) in scaled_ids) == members]
        if members and not params:
            continue
        groups += [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, "lr": group_lr},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr": group_lr},
        ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, max(total_steps, 1)))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate factor: linear warmup over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
