"""Loading weights from a local file (no weights are ever downloaded).

``load_weights_file`` reads a ``.safetensors`` file or a ``torch.save`` file of tensors
(``weights_only=True``); ``load_state_dict_checked`` copies it into a module with one clear
error, naming the file, when it does not fit. ``suite_checkpoint_part`` reads the weights of one
part (``encoder`` or ``decoder``) of a checkpoint of this suite, so that a trained model's encoder
can start another recipe, of another task or modality too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch
from torch import Tensor, nn

from multimodal_s2s.checkpoint import (
    MODEL_PREFIX,
    STATE_DICT_KEY,
    CheckpointError,
    is_suite_checkpoint,
    load_checkpoint_file,
    weights_under,
)
from multimodal_s2s.errors import first_line

SAFETENSORS_SUFFIX = ".safetensors"
#: Buffers that old checkpoints may lack and that BatchNorm fills in itself.
OPTIONAL_BUFFER_SUFFIX = "num_batches_tracked"


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the encoder."""


def load_weights_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state dict from a local ``.safetensors`` file or a ``torch.save`` file (tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == SAFETENSORS_SUFFIX:
            state = safetensors.torch.load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many types for unreadable files
        raise WeightsError(f"cannot read weights file {path}: {first_line(error)}") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return dict(state)


def suite_checkpoint_part(path: str | os.PathLike, part: str) -> dict[str, Tensor] | None:
    """The weights of the model's ``part`` ("encoder", "decoder") in ``path`` when it is a checkpoint of this
    suite (prefix removed); None when it is another kind of weights file."""
    path = Path(path)
    if not path.is_file() or path.suffix == SAFETENSORS_SUFFIX:
        return None
    try:
        checkpoint = load_checkpoint_file(path)
    except CheckpointError:  # not a torch zip file: the encoder's own loader reports it
        return None
    if not is_suite_checkpoint(checkpoint):
        return None
    weights = weights_under(checkpoint[STATE_DICT_KEY], f"{MODEL_PREFIX}{part}.")
    if not weights:
        raise WeightsError(f"checkpoint {path} holds no {part} weights")
    return weights


def load_state_dict_checked(
    module: nn.Module, state: Mapping[str, Tensor], path: str | os.PathLike, part: str = "encoder"
) -> None:
    """Copy ``state`` into every parameter and buffer of ``module``, in one clear error if it does not fit.

    Entries the module does not have (a classifier head, unused stages) are ignored; every
    entry the module has must be present with the same shape.
    """
    own = module.state_dict()
    needed = [key for key in own if not key.endswith(OPTIONAL_BUFFER_SUFFIX)]
    missing = [key for key in needed if key not in state]
    if missing:
        raise WeightsError(
            f"weights file {path} lacks {len(missing)} of the {len(needed)} entries the {part} needs, "
            f"e.g. {missing[0]!r}"
        )
    for key in needed:
        if state[key].shape != own[key].shape:
            raise WeightsError(
                f"weights file {path}: {key!r} has shape {tuple(state[key].shape)}, "
                f"the {part} needs {tuple(own[key].shape)}"
            )
    module.load_state_dict({key: state[key] for key in own if key in state}, strict=False)
