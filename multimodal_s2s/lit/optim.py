"""The optimizer and learning-rate schedule of every task's LightningModule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


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
