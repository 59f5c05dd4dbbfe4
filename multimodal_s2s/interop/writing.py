"""What every importer shares: its one-line error, reading an HF folder's files, writing the suite checkpoint."""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from multimodal_s2s.checkpoint import MODEL_PREFIX, CheckpointHeader, save_suite_checkpoint
from multimodal_s2s.errors import first_line
from multimodal_s2s.models import ModelConfig, build_model

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


def model_with_weights(
    source: Path, model_config: ModelConfig, convert: Callable[[], dict[str, Tensor]], described_by: str = "config"
) -> nn.Module:
    """The suite model of ``model_config`` holding the weights ``convert()`` maps from the source's; ImportFailed
    (one line naming ``source``) when the mapping misses a key or a shape does not fit what ``described_by``
    (the source's config, whisper's dims) said."""
    model = build_model(model_config)
    try:
        model.load_state_dict(convert())
    except (KeyError, RuntimeError) as error:
        raise ImportFailed(f"{source}: weights do not fit the {described_by} ({first_line(error)})") from None
    return model


def write_suite_checkpoint(out: Path, header: CheckpointHeader, model: nn.Module) -> None:
    """``model``'s weights and ``header`` as a suite checkpoint at ``out``, written atomically (a temporary
    file renamed into place; OutputError when it cannot be written)."""
    save_suite_checkpoint(out, header, {MODEL_PREFIX + key: value for key, value in model.state_dict().items()})
