"""Transfer-learning options of the task modules: a frozen encoder for the first epochs, a lower encoder lr.

``freeze_encoder_epochs`` N: during training epochs 0..N-1 the encoder's parameters do not require
gradients (so the optimizer leaves them as they are) and the encoder is in eval mode (its BatchNorm
statistics stay those of its weights); from epoch N on it trains like the rest. ``encoder_lr_scale`` s:
the encoder's parameters are their own optimizer groups at ``lr * s`` (the schedule scales both).
An encoder with weights by name brings their input normalisation (``with_weights_preprocessing``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from multimodal_s2s.checkpoint import ImagePreprocessing
from multimodal_s2s.encoders.pretrained import PretrainedWeights
from multimodal_s2s.lit.optim import check_count, check_number

#: The DDP strategy under which parameters can stop receiving gradients mid-run.
FIND_UNUSED_STRATEGY = "ddp_find_unused_parameters_true"


def check_transfer_options(freeze_encoder_epochs: Any, encoder_lr_scale: Any) -> None:
    """One line naming the key when an option is out of range (before any data is read)."""
    check_count("model.freeze_encoder_epochs", freeze_encoder_epochs)
    check_number("model.encoder_lr_scale", encoder_lr_scale, lowest=0.0, inclusive=False)


def set_encoder_frozen(encoder: nn.Module, frozen: bool, training: bool) -> None:
    """Freeze (no gradients, eval mode) or unfreeze ``encoder``; unfrozen it follows ``training``."""
    encoder.requires_grad_(not frozen)
    encoder.train(training and not frozen)


def check_strategy(strategy: Any) -> None:
    """DDP without ``find_unused_parameters`` cannot train a model whose encoder gets no gradients."""
    if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters", False):
        raise ValueError(f"model.freeze_encoder_epochs under DDP needs trainer.strategy: {FIND_UNUSED_STRATEGY}")


def with_weights_preprocessing(preprocessing: Any, weights: PretrainedWeights | None) -> Any:
    """``preprocessing`` (an ``ImagePreprocessing``) with the mean, std and name of ``weights``; unchanged
    when there are none (random init, a local file) or the inputs are not images."""
    if weights is None or not isinstance(preprocessing, ImagePreprocessing):
        return preprocessing
    return replace(
        preprocessing, mean=weights.mean, std=weights.std, weights=weights.name, weights_input_size=weights.input_size
    )
