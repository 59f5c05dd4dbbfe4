"""Self-contained checkpoints: the model config, tokenizers and preprocessing travel inside.

A Lightning checkpoint of this suite carries ``checkpoint["mms2s"]`` (plain JSON-like data:
task, model config, tokenizer dicts, preprocessing) next to ``state_dict``. Loading uses
``torch.load(..., weights_only=True)``: nothing in a checkpoint is ever unpickled.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from multimodal_s2s.models import ModelConfig, build_model

CHECKPOINT_KEY = "mms2s"
MODEL_PREFIX = "model."


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, not this suite's, or from another task."""


def read_checkpoint(path: str | Path, task: str) -> dict[str, Any]:
    """Load a checkpoint of ``task`` ("seq2seq" or "segmentation") safely; one-line errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line})") from None
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if meta is None or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a multimodal_s2s checkpoint (no '{CHECKPOINT_KEY}' section)")
    if meta.get("task") != task:
        raise CheckpointError(f"{path}: a {meta.get('task')!r} checkpoint, but this command needs a {task!r} one")
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """Rebuild the model from the config stored in ``checkpoint`` and load its weights (eval mode)."""
    model = build_model(ModelConfig.from_dict(checkpoint[CHECKPOINT_KEY]["model"]))
    weights = {
        key.removeprefix(MODEL_PREFIX): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(MODEL_PREFIX)
    }
    model.load_state_dict(weights)
    return model.eval()
