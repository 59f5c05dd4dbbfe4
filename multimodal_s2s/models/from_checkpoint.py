"""Models rebuilt from a checkpoint of this suite: its header's config with its weights, and the CTC head
when the header says the model has one."""

from __future__ import annotations

from torch import nn

from multimodal_s2s.checkpoint import CTC_HEAD_PREFIX, MODEL_PREFIX, Checkpoint, CheckpointError, CheckpointHeader
from multimodal_s2s.errors import first_line
from multimodal_s2s.models import build_model
from multimodal_s2s.models.ctc import CTCHead


def model_from_checkpoint(checkpoint: Checkpoint) -> nn.Module:
    """The model rebuilt from the header's config with the checkpoint's weights, in eval mode."""
    try:
        model = build_model(checkpoint.header.model.without_weights_files())
        model.load_state_dict(checkpoint.weights(MODEL_PREFIX))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # unknown names, shapes that differ
        raise _cannot_rebuild(checkpoint, "the model", error) from None
    return model.eval()


def new_ctc_head(header: CheckpointHeader, memory_dim: int) -> CTCHead | None:
    """A freshly initialized CTC head over memory rows of width ``memory_dim`` when ``header`` says the model
    has one (``has_ctc_head``), else None: how training and resuming decide it."""
    return CTCHead(memory_dim, header.model.vocab_size) if header.has_ctc_head else None


def ctc_head_from_checkpoint(checkpoint: Checkpoint, memory_dim: int) -> CTCHead | None:
    """The checkpoint's CTC head with its weights, in eval mode, when its header says it has one, else None:
    how inference decides it (as training did)."""
    head = new_ctc_head(checkpoint.header, memory_dim)
    if head is None:
        return None
    try:
        head.load_state_dict(checkpoint.weights(CTC_HEAD_PREFIX))
    except RuntimeError as error:  # missing weights, shapes that differ
        raise _cannot_rebuild(checkpoint, "the CTC head", error) from None
    return head.eval()


def _cannot_rebuild(checkpoint: Checkpoint, what: str, error: Exception) -> CheckpointError:
    """One line naming the file, the part and the first line of the reason."""
    return CheckpointError(f"{checkpoint.path}: cannot rebuild {what} from this checkpoint ({first_line(error)})")
