"""What every pipeline shares: a checkpoint read safely, the model on a device, and a model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import torch

from multimodal_s2s.checkpoint import Checkpoint, CheckpointHeader, ImagePreprocessing, Task, read_checkpoint
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.pipelines.card import ModelCard, decoding_text
from multimodal_s2s.tokenizers import VocabularyTokenizer


def resolve_device(name: str | torch.device) -> torch.device:
    """ "auto" -> the GPU when there is one, else the CPU; "cuda..." without a GPU is a ValueError."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: not a device name (cpu, cuda, cuda:N or auto)") from None


def batches(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` cut into consecutive lists of at most ``size`` (>= 1)."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


class Pipeline:
    """A trained model with everything its checkpoint carries, ready for inference.

    Subclasses name their ``task``, prepare inputs and are called on a list of inputs. Build one
    with ``from_checkpoint(path, device)`` (or ``multimodal_s2s.load_pipeline``, which picks the
    class from the checkpoint's task).
    """

    task: ClassVar[Task]

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "auto"):
        self.path = checkpoint.path
        self.header: CheckpointHeader = checkpoint.header
        self.training_steps = checkpoint.global_step
        self.device = resolve_device(device)
        self.model = model_from_checkpoint(checkpoint).to(self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto") -> Self:
        """Read ``path`` (weights only) and build the pipeline. CheckpointError (one line naming the file)
        when it is missing, unreadable, not this suite's or of another task."""
        return cls(read_checkpoint(path, cls.task), device)

    def model_card(self) -> ModelCard:
        """What the model is and knows, for people: task, parts, training data, input, output, decoding, metrics."""
        header = self.header
        tokenizer, image, decoding = header.tokenizer, header.preprocessing, header.decoding
        return ModelCard(
            task=header.task,
            model=header.model,
            parameters=sum(p.numel() for p in self.model.parameters()),
            data=header.data,
            metrics=dict(header.metrics),
            training_steps=self.training_steps,
            decoding=None if decoding is None else decoding_text(
                decoding.beam_size, ngram=decoding.no_repeat_ngram_size
            ),
            tokenizer=None if tokenizer is None else tokenizer.type_name,
            vocabulary_size=None if tokenizer is None else tokenizer.vocab_size,
            words=tuple(tokenizer.words) if isinstance(tokenizer, VocabularyTokenizer) else None,
            classes=None if header.labels is None else header.labels.class_names,
            image_size=image.image_size if isinstance(image, ImagePreprocessing) else None,
        )
