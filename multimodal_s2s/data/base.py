"""What the four data modules share: the checkpoint a run starts from, the predict split, option checks.

A data module learns its tokenizers (or reads its classes) from the data when it trains a new model.
When the run starts from a checkpoint (``mms2s validate|test|predict|fit --ckpt_path``, which sets
``trainer.ckpt_path``), it adopts the checkpoint's header instead (``use_header``): its tokenizers,
preprocessing and labels, so that evaluation and resuming see exactly what the model was trained
with; where the data holds labels the checkpoint cannot express, a warning says how many.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import ClassVar

import lightning as L
from torch.utils.data import DataLoader

from multimodal_s2s.checkpoint import CheckpointError, CheckpointHeader, Task, TrainingData, header_for_trainer
from multimodal_s2s.tokenizers import Tokenizer
from multimodal_s2s.types import UNK_ID


def check_loader_options(batch_size: int, num_workers: int | None) -> None:
    """One clear line for a batch size below 1 or a negative worker count (before any data is read);
    ``num_workers`` None: sized from the cores (``threads.default_num_workers``)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"data.batch_size must be an integer >= 1, got {batch_size!r}")
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
        raise ValueError(f"data.num_workers must be None or an integer >= 0, got {num_workers!r}")


def warn_unknown_tokens(tokenizer: Tokenizer, texts: list[str], origin: str) -> None:
    """Warn with counts when ``texts`` hold tokens (characters, words) outside ``tokenizer``'s vocabulary."""
    encoded = [tokenizer.encode(text) for text in texts]
    unknown = [sum(token == UNK_ID for token in ids) for ids in encoded]
    if any(unknown):
        total = sum(len(ids) for ids in encoded)
        warnings.warn(
            f"{origin}: {sum(n > 0 for n in unknown)} of {len(texts)} references hold {sum(unknown)} tokens "
            f"(of {total}) outside the checkpoint's vocabulary; they can never be predicted",
            stacklevel=2,
        )


class SuiteDataModule(L.LightningDataModule, ABC):
    """Base of the data modules. Subclasses name their ``task``, keep their datasets in ``datasets`` (split
    -> dataset), implement ``use_header``, ``has_split`` and ``evaluation_loader(split)``, and call
    ``adopt_run_checkpoint()`` first in ``setup``."""

    task: ClassVar[Task]

    def __init__(self) -> None:
        super().__init__()
        self.header: CheckpointHeader | None = None

    @property
    def description(self) -> TrainingData:
        """The format, the root and how many training examples (once the training split is built)."""
        train = self.datasets.get("train")
        return TrainingData(self.hparams.format, self.hparams.root, None if train is None else len(train))

    def use_header(self, header: CheckpointHeader) -> None:
        """Adopt a checkpoint's tokenizers / preprocessing / labels; subclasses extend this."""
        if header.task != self.task:
            ours = self.task.value
            raise CheckpointError(f"the checkpoint's task is {header.task.value}, but the data is for {ours}")
        self.header = header

    def use_preprocessing(self, preprocessing) -> None:
        """Prepare inputs with ``preprocessing`` (a pretrained encoder's normalisation) from now on: datasets
        built with another are built again when asked for."""
        if preprocessing != self.preprocessing:
            self.preprocessing = preprocessing
            self.datasets.clear()

    def adopt_run_checkpoint(self) -> None:
        """Use the header of the checkpoint the run starts from, once, when there is one."""
        header = header_for_trainer(self.trainer)
        if header is not None and self.header is None:
            self.use_header(header)

    @abstractmethod
    def has_split(self, split: str) -> bool:
        """Whether ``split`` ("train", "val" or "test") has data in this module's settings."""

    @abstractmethod
    def evaluation_loader(self, split: str) -> DataLoader:
        """The loader of ``split`` for validation, test or predict: each example once, in order (per rank under DDP)."""

    @property
    def predict_split(self) -> str:
        """What ``predict`` reads: the test split when there is one, else the validation split."""
        return "test" if self.has_split("test") else "val"

    def predict_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.predict_split)
