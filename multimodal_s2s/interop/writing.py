"""What every importer shares: its one-line error, reading an HF folder's files, writing the suite checkpoint."""

from __future__ import annotations

import json
import pickle
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from multimodal_s2s.checkpoint import CHECKPOINT_KEY, MODEL_PREFIX, CheckpointHeader
from multimodal_s2s.errors import first_line
from multimodal_s2s.outputs import atomic_write

#: What Lightning reads first in any checkpoint it restores (``mms2s validate|test --ckpt_path OUT``).
LIGHTNING_VERSION_KEY = "pytorch-lightning_version"
#: An HF folder's weights, best first: safetensors never runs code; the .bin is read with weights_only.
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")


class ImportFailed(ValueError):
    """A source that cannot be imported: one line naming the file and what is wrong."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ImportFailed naming it when missing or malformed."""
    if not path.is_file():
        raise ImportFailed(f"{path}: not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ImportFailed(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ImportFailed(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_hf_weights(folder: Path) -> dict[str, Tensor]:
    """The state dict of an HF folder (``WEIGHTS_FILES``, the first present); ImportFailed when none is there
    or it cannot be read (a truncated file, not a weights file)."""
    path = next((folder / name for name in WEIGHTS_FILES if (folder / name).is_file()), None)
    if path is None:
        raise ImportFailed(f"{folder}: no weights file (expected one of {', '.join(WEIGHTS_FILES)})")
    try:
        if path.suffix == ".safetensors":
            weights = load_file(path)
        else:
            weights = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as error:
        raise ImportFailed(f"{path}: unreadable or truncated weights ({first_line(error)})") from None
    if not isinstance(weights, dict) or not all(isinstance(value, Tensor) for value in weights.values()):
        raise ImportFailed(f"{path}: not a state dict of tensors")
    return weights


def write_suite_checkpoint(out: Path, header: CheckpointHeader, model: nn.Module) -> None:
    """``model``'s weights and ``header`` as a suite checkpoint at ``out``, written atomically (a temporary
    file renamed into place; OutputError when it cannot be written). It names the Lightning version, as
    Lightning's own checkpoints do, so that ``mms2s validate`` and ``test`` take it as ``--ckpt_path``."""
    state_dict = {MODEL_PREFIX + key: value for key, value in model.state_dict().items()}
    checkpoint = {
        "state_dict": state_dict, CHECKPOINT_KEY: header.to_dict(), LIGHTNING_VERSION_KEY: version("lightning")
    }
    atomic_write(out, lambda file: torch.save(checkpoint, file))
