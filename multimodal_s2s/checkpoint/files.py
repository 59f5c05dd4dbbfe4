"""The checkpoint file: its keys, weights-only reading, and the test that tells this suite's checkpoints apart.

A checkpoint of this suite is a Lightning checkpoint (a dict) with ``state_dict`` (the model's weights
under ``model.``, a CTC head's under ``ctc_head.``) and, under ``checkpoint["mms2s"]``, the plain-data
form of a ``CheckpointHeader``. Reading is ``torch.load(..., weights_only=True)`` only: nothing in a
checkpoint is ever unpickled. Every reader of the format (the pipelines, training and resuming, the
encoders' ``pretrained_path``) reads it here.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import pickle
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from multimodal_s2s.checkpoint.header import (
    SILENCE_PAD_FORMAT,
    CheckpointError,
    CheckpointHeader,
    Task,
    is_seconds,
)
from multimodal_s2s.errors import first_line
from multimodal_s2s.outputs import atomic_write

#: Where a suite checkpoint keeps its header, its weights, and the prefixes of the model's and the CTC head's.
CHECKPOINT_KEY = "mms2s"
STATE_DICT_KEY = "state_dict"
MODEL_PREFIX = "model."
CTC_HEAD_PREFIX = "ctc_head."
#: Where Lightning saves its optimizer step count, and a data module's hyper-parameters (the recipe's ``data:``).
GLOBAL_STEP_KEY = "global_step"
DATAMODULE_HPARAMS_KEY = "datamodule_hyper_parameters"
#: The key Lightning reads first in any checkpoint it restores (``--ckpt_path``).
LIGHTNING_VERSION_KEY = "pytorch-lightning_version"


@dataclass
class Checkpoint:
    """A checkpoint read safely: its header, its weights (``state_dict`` keys as Lightning saves them) and
    the optimizer steps Lightning recorded (None when there are none)."""

    path: Path
    header: CheckpointHeader
    state_dict: dict[str, Tensor]
    global_step: int | None = None

    def weights(self, prefix: str) -> dict[str, Tensor]:
        """The entries under ``prefix`` (e.g. "model.encoder."), with the prefix removed."""
        return weights_under(self.state_dict, prefix)


def weights_under(state_dict: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``state_dict`` under ``prefix``, with the prefix removed."""
    return {key.removeprefix(prefix): value for key, value in state_dict.items() if key.startswith(prefix)}


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """``torch.load`` a local file with weights only; one-line CheckpointError when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(error)})") from None


def save_suite_checkpoint(
    path: str | Path, header: CheckpointHeader, state_dict: dict[str, Tensor], global_step: int = 0
) -> None:
    """A suite checkpoint written atomically (OutputError when it cannot be): ``state_dict`` keyed as a task
    module's (``model.``, ``ctc_head.``), the header, and what Lightning needs to restore it for
    ``mms2s validate|test|predict --ckpt_path`` (a checkpoint made outside a fit: an import, an average)."""
    checkpoint = {
        STATE_DICT_KEY: state_dict,
        CHECKPOINT_KEY: header.to_dict(),
        GLOBAL_STEP_KEY: global_step,
        LIGHTNING_VERSION_KEY: importlib.metadata.version("lightning"),
    }
    atomic_write(path, lambda file: torch.save(checkpoint, file))


def is_suite_checkpoint(raw: Any) -> bool:
    """Whether a loaded file is a checkpoint of this suite: a dict with a header and a state dict."""
    return isinstance(raw, dict) and isinstance(raw.get(CHECKPOINT_KEY), dict) and isinstance(
        raw.get(STATE_DICT_KEY), dict
    )


def header_of(raw: Any, path: str | Path) -> CheckpointHeader:
    """The header of a loaded checkpoint dict; CheckpointError naming ``path`` when there is none."""
    if not is_suite_checkpoint(raw):
        raise CheckpointError(f"{path}: not a multimodal_s2s checkpoint (no '{CHECKPOINT_KEY}' header)")
    meta = raw[CHECKPOINT_KEY]
    try:
        header = CheckpointHeader.from_dict(meta)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    if header.task == Task.ASR and meta.get("format_version", 0) < SILENCE_PAD_FORMAT:
        silence_pad = recipe_silence_pad(raw)
        header.preprocessing = replace(header.preprocessing, silence_pad_seconds=silence_pad)
    return header


def recipe_silence_pad(raw: dict[str, Any]) -> float:
    """The silence an ASR recipe put around training utterances (``data.silence_pad``) as Lightning saved it
    in checkpoint ``raw`` (its data module's hyper-parameters), for headers older than format 2, which did
    not record it; 0.0 when it is absent or not a number >= 0 (as those headers have always been read)."""
    recipe = raw.get(DATAMODULE_HPARAMS_KEY)
    silence_pad = recipe.get("silence_pad") if isinstance(recipe, dict) else None
    return float(silence_pad) if is_seconds(silence_pad) else 0.0


def read_checkpoint(path: str | Path, task: Task | None = None) -> Checkpoint:
    """Read a checkpoint safely; ``task``: refuse one of another task. One-line errors name the file."""
    raw = load_checkpoint_file(path)
    header = header_of(raw, path)
    if task is not None and header.task != task:
        needed = Task(task).value
        raise CheckpointError(f"{path}: the checkpoint's task is {header.task.value}, but this needs {needed}")
    steps = raw.get(GLOBAL_STEP_KEY)
    return Checkpoint(Path(path), header, raw[STATE_DICT_KEY], steps if isinstance(steps, int) else None)


def header_for_trainer(trainer: Any) -> CheckpointHeader | None:
    """The header of the local checkpoint a Lightning run starts from (``trainer.ckpt_path``), or None
    when there is none. Read once per file version (weights only)."""
    path = getattr(trainer, "ckpt_path", None) if trainer is not None else None
    if path is None or not Path(path).is_file():
        return None
    return _cached_header(os.path.abspath(path), os.path.getmtime(path))


@functools.lru_cache(maxsize=4)
def _cached_header(path: str, modified: float) -> CheckpointHeader:
    return header_of(load_checkpoint_file(path), path)
