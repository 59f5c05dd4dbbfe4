"""What every pipeline shares: a checkpoint read safely, the model on a device, a model card, and a Hub folder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar, Self

import huggingface_hub
import torch
from torch import Tensor

from multimodal_s2s.checkpoint import MODEL_PREFIX, Checkpoint, CheckpointHeader, ImagePreprocessing, Task
from multimodal_s2s.checkpoint.hub import CARD_NAME, hub_files, read_model
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.outputs import write_folder
from multimodal_s2s.pipelines.card import ModelCard, decoding_text
from multimodal_s2s.pipelines.hub_card import hub_readme
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
    with ``from_checkpoint(path, device)`` or ``from_pretrained`` (or ``multimodal_s2s.load_pipeline``,
    which picks the class from the checkpoint's task); ``save_pretrained`` writes it as a Hub folder.
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
        """Read ``path`` and build the pipeline: a checkpoint file (weights only), a Hub folder
        (``save_pretrained``) or a Hub repository id ("user/name", through the huggingface_hub cache;
        ``HF_HUB_OFFLINE=1``: the cache only). CheckpointError (one line naming the file, folder or
        repository) when it is missing, unreadable, not this suite's or of another task."""
        return cls(read_model(path, cls.task), device)

    @classmethod
    def from_pretrained(cls, name_or_folder: str | Path, device: str | torch.device = "auto") -> Self:
        """huggingface_hub's name for ``from_checkpoint``: a Hub repository id ("user/name") or a Hub folder."""
        return cls.from_checkpoint(name_or_folder, device)

    def weights(self) -> dict[str, Tensor]:
        """The model's weights under their checkpoint keys (``model.*``)."""
        return {f"{MODEL_PREFIX}{key}": value for key, value in self.model.state_dict().items()}

    def save_pretrained(self, folder: str | Path, overwrite: bool = False, repo_id: str | None = None) -> Path:
        """Write the model as a Hub folder (``checkpoint.hub``): config.json, model.safetensors, the tokenizer
        files and a README.md model card (its snippets name ``repo_id`` when given). A new or empty folder is
        written whole and renamed into place; one with files only with ``overwrite`` (OutputError otherwise)."""
        files = hub_files(self.header, self.weights(), self.training_steps)
        files[CARD_NAME] = hub_readme(self.model_card(), repo_id).encode("utf-8")
        return write_folder(folder, files, overwrite)

    def push_to_hub(self, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
        """Create the Hub repository ``repo_id`` when missing and upload the model's Hub folder into it
        (huggingface_hub's ``create_repo`` and ``upload_folder``; ``token``: default, the logged-in user's).
        Returns the commit's URL."""
        huggingface_hub.create_repo(repo_id, token=token, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            folder = self.save_pretrained(Path(scratch) / "model", repo_id=repo_id)
            commit = huggingface_hub.upload_folder(repo_id=repo_id, folder_path=folder, token=token,
                                                   commit_message=f"{self.task.value} model from multimodal_s2s")
        return commit.commit_url

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
