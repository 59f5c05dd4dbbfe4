"""What both task modules share: the checkpoint header, from data or from a checkpoint, and the optimizer.

A module's model is built in ``setup``: from the checkpoint that the run starts from when there is one
(``trainer.ckpt_path``, which ``mms2s`` sets before the run: validate, test, predict and resuming then
use the checkpoint's tokenizers, preprocessing and labels, never ones rebuilt from data), else from
the recipe and the data module (``header_from_data``). ``model.init_checkpoint`` (text-out modules) names a
suite checkpoint to fine-tune as a new run (an imported whisper or Marian model, or an earlier run): its
model, weights, tokenizers, preprocessing and decoding rules replace the recipe's, in this module and in the
data module, and the optimizer, schedule and epochs start afresh. A checkpoint given to Lightning another way
(``trainer.validate(model, ckpt_path=...)`` from Python, ``load_from_checkpoint``) is caught in
``on_load_checkpoint``: its header replaces one built from data before any weight is loaded, and the
data module adopts it too. Every checkpoint written carries the header with the latest validation
metrics (``checkpoint.CheckpointHeader``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics.aggregation import MeanMetric

from multimodal_s2s.checkpoint import (
    CHECKPOINT_KEY,
    MODEL_PREFIX,
    CheckpointHeader,
    header_for_trainer,
    header_of,
    read_checkpoint,
    same_model,
)
from multimodal_s2s.data.base import SuiteDataModule
from multimodal_s2s.lit.optim import adamw_warmup_cosine
from multimodal_s2s.lit.transfer import check_strategy, set_encoder_frozen, with_weights_preprocessing

#: Prefix of the metrics a checkpoint's header records.
VALIDATION_PREFIX = "val/"
#: Model arguments that the modules derive from the data (not written in recipes).
DERIVED_ARGS = {"vocab_size"}


def evaluation_loss_means() -> nn.ModuleDict:
    """A weighted mean of the loss for "val" and "test", logged as ``<split>/loss``. A torchmetrics mean
    reduces over DDP ranks exactly (sums of weighted losses and of weights); Lightning's own mean of
    logged values does not: it averages the ranks' integer weight counts in place, truncating an odd sum
    (val/loss was 623/622 times too large with 310 and 313 target tokens on 2 ranks)."""
    return nn.ModuleDict({split: MeanMetric() for split in ("val", "test")})


class SuiteModule(L.LightningModule, ABC):
    """Base of the task modules. Subclasses implement ``header_from_data()`` and ``build(header)``."""

    def __init__(self) -> None:
        super().__init__()
        self.header: CheckpointHeader | None = None
        self.model = None
        self.encoder_frozen = False

    @abstractmethod
    def header_from_data(self) -> CheckpointHeader:
        """The header of a new model: the recipe's model config and the data module's tokenizers etc."""

    @abstractmethod
    def build(self, header: CheckpointHeader) -> None:
        """Build the model (and metrics, heads) that ``header`` describes."""

    def setup(self, stage: str) -> None:
        if self.model is not None:
            return
        header = header_for_trainer(self.trainer)
        if header is None and self.hparams.get("init_checkpoint"):
            self._start_from(self.hparams.init_checkpoint)
        elif header is None:
            self.use_header(self.header_from_data())
            self._use_weights_preprocessing()
        else:
            self._warn_if_recipe_differs(header)
            self.use_header(_weights_from_checkpoint(header))

    def use_header(self, header: CheckpointHeader) -> None:
        """Build everything from ``header``."""
        self.header = header
        self.build(header)

    def _start_from(self, path: str) -> None:
        """Fine-tune checkpoint ``path`` (``model.init_checkpoint``): its header and weights, adopted by the data
        module too. CheckpointError (one line) for a missing file or one of another task."""
        datamodule = self.trainer.datamodule
        checkpoint = read_checkpoint(path, getattr(datamodule, "task", None))
        self._warn_if_recipe_differs(checkpoint.header)
        self.use_header(_weights_from_checkpoint(checkpoint.header))
        self.model.load_state_dict(checkpoint.weights(MODEL_PREFIX))
        if isinstance(datamodule, SuiteDataModule):
            datamodule.use_header(checkpoint.header)
        rank_zero_info(f"fine-tuning {path}: its model, weights, tokenizer and preprocessing")

    def _use_weights_preprocessing(self) -> None:
        """A new model whose encoder has weights by name: their normalisation goes into the header and the
        data module (``encoders.pretrained``)."""
        preprocessing = with_weights_preprocessing(self.header.preprocessing, self.model.encoder.pretrained_weights)
        if preprocessing != self.header.preprocessing:
            rank_zero_info(f"images are normalised as the encoder's weights expect: {preprocessing}")
            self.header = replace(self.header, preprocessing=preprocessing)
            self.trainer.datamodule.use_preprocessing(preprocessing)

    def _warn_if_recipe_differs(self, header: CheckpointHeader) -> None:
        differences = _config_differences(self.hparams, header.model.to_dict())
        if differences:
            rank_zero_warn(f"the checkpoint's model is used; the recipe's differs in {', '.join(differences)}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        metrics = {
            key: float(value)
            for key, value in (self.trainer.callback_metrics if self._trainer is not None else {}).items()
            if key.startswith(VALIDATION_PREFIX) and value.numel() == 1
        }
        checkpoint[CHECKPOINT_KEY] = replace(self.header, metrics=metrics or self.header.metrics).to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Before the weights are loaded: a checkpoint whose model or vocabulary differs from the one built
        in ``setup`` (or none was built: ``load_from_checkpoint``) replaces it, in this module and in the
        data module."""
        header = header_of(checkpoint, "the checkpoint")
        if self.header is not None and same_model(self.header, header):
            return
        self._warn_if_recipe_differs(header)
        self.use_header(_weights_from_checkpoint(header))
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if isinstance(datamodule, SuiteDataModule):
            datamodule.use_header(header)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        total = int(self.trainer.estimated_stepping_batches)
        encoder = self.model.encoder.parameters() if hp.encoder_lr_scale != 1 else ()
        return adamw_warmup_cosine(
            self.parameters(), hp.lr, hp.weight_decay, hp.warmup_steps, total, encoder, hp.encoder_lr_scale
        )

    def on_train_epoch_start(self) -> None:
        """The encoder is frozen in the first ``freeze_encoder_epochs`` epochs (``lit.transfer``)."""
        frozen = self.current_epoch < self.hparams.freeze_encoder_epochs
        if frozen:
            check_strategy(self.trainer.strategy)
        if frozen or self.encoder_frozen:
            self.encoder_frozen = frozen
            set_encoder_frozen(self.model.encoder, frozen, self.training)

    def train(self, mode: bool = True) -> SuiteModule:
        """As ``nn.Module.train``; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.model.encoder.eval()
        return self


def _weights_from_checkpoint(header: CheckpointHeader) -> CheckpointHeader:
    """``header`` whose model is built without the weights files it was first started from: its weights
    come from the checkpoint (and those files need not exist any more)."""
    return replace(header, model=header.model.without_weights_files())


def _config_differences(hparams: Any, model: dict[str, Any]) -> list[str]:
    """Dotted keys of the model config where the recipe's hyper-parameters differ from ``model``."""
    differences = []
    for key in ("encoder", "decoder"):
        if hparams.get(key) != model[key]:
            differences.append(key)
    for key in ("encoder_args", "decoder_args"):
        recipe, stored = dict(hparams.get(key) or {}), model[key]
        names = sorted((set(recipe) | set(stored)) - DERIVED_ARGS)
        differences += [f"{key}.{name}" for name in names if recipe.get(name) != stored.get(name)]
    return differences
