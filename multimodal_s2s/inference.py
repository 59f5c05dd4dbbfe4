"""Text-out checkpoints ready for inference.

``load_seq2seq(path)`` reads a checkpoint of ``lit.seq2seq.Seq2SeqModule`` (safely, see checkpoint.py)
and rebuilds everything it carries: the model, the tokenizers, the preprocessing and the decoding
options used in validation, as a ``Seq2SeqPipeline`` (``generate(inputs) -> list[Generation]``).
``ImageCaptioner`` adds what images need on top: the evaluation transform, and the grid that the
cross-attention weights of each generated token map onto.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from multimodal_s2s.checkpoint import CHECKPOINT_KEY, CheckpointError, model_from_checkpoint, read_checkpoint
from multimodal_s2s.data.caption_transforms import preprocess_transform
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.registry import encoder_entry
from multimodal_s2s.tokenizers import Tokenizer, tokenizer_from_dict
from multimodal_s2s.types import SPECIAL_TOKENS, Emits, Modality

TASK = "seq2seq"
#: Keys a captioning checkpoint's ``preprocess`` dict must hold.
IMAGE_PREPROCESS_KEYS = ("image_size", "mean", "std")
#: Decimals of the scores written as JSON.
SCORE_DIGITS = 4


@dataclass
class Generation:
    """One input's output.

    Attributes:
        text: the best hypothesis, detokenized.
        score: its ranking score (length-penalized log-probability; higher is better).
        tokens: its token ids (no BOS / EOS).
        n_best: (text, score) of the best hypotheses, best first (the first is ``text``).
        attention: (len(tokens), T) cross-attention of each output token over the memory rows, or None.
    """

    text: str
    score: float
    tokens: list[int]
    n_best: list[tuple[str, float]]
    attention: Tensor | None = None


def json_score(score: float, digits: int = SCORE_DIGITS) -> float | None:
    """A score for JSON output: rounded, or None when not finite (JSON has no infinity)."""
    return round(score, digits) if math.isfinite(score) else None


def resolve_device(name: str) -> torch.device:
    """ "auto" -> the GPU when there is one, else the CPU; "cuda..." without a GPU is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no CUDA device is available")
    return torch.device(name)


class Seq2SeqPipeline:
    """A text-out model with its tokenizers, preprocessing and default decoding options."""

    def __init__(self, checkpoint: dict[str, Any], device: torch.device | str = "cpu"):
        meta = checkpoint[CHECKPOINT_KEY]
        self.device = torch.device(device)
        self.model = model_from_checkpoint(checkpoint).to(self.device)
        self.tokenizer: Tokenizer = tokenizer_from_dict(meta["tokenizer"])
        source = meta.get("source_tokenizer")
        self.source_tokenizer: Tokenizer | None = tokenizer_from_dict(source) if source else None
        self.preprocess: dict[str, Any] = dict(meta.get("preprocess") or {})
        self.decoding: dict[str, Any] = dict(meta.get("decoding") or {})
        self.modality = encoder_entry(self.model.config.encoder).modality

    @property
    def task(self) -> str:
        """The task the checkpoint was trained for ("captioning", "translation", ...), else its input kind."""
        return self.preprocess.get("task") or f"{self.modality.value}-to-text"

    def options(
        self, beam_size: int | None = None, n_best: int = 1, max_length: int | None = None, **extra: Any
    ) -> DecodingOptions:
        """Decoding options; what is not given comes from the checkpoint's validation settings."""
        return DecodingOptions(
            beam_size=beam_size or self.decoding.get("beam_size", 1),
            n_best=n_best,
            max_length=max_length or self.decoding.get("max_length", DecodingOptions.max_length),
            length_penalty=self.decoding.get("length_penalty", DecodingOptions.length_penalty),
            **extra,
        )

    @torch.no_grad()
    def generate(
        self, inputs: Tensor, lengths: Tensor | None = None, options: DecodingOptions | None = None
    ) -> list[Generation]:
        """inputs (B, ...) as the encoder reads them (with lengths (B,) for audio and text) -> B generations."""
        lengths = None if lengths is None else lengths.to(self.device)
        results = decode(self.model, inputs.to(self.device), options or self.options(), lengths)
        return [
            Generation(
                text=self.tokenizer.decode(result.tokens),
                score=float(result.score),
                tokens=list(result.tokens),
                n_best=[(self.tokenizer.decode(tokens), float(score)) for tokens, score in result.n_best],
                attention=result.attention,
            )
            for result in results
        ]

    def token_texts(self, tokens: list[int]) -> list[str]:
        """Each token id as text on its own (words, characters or BPE pieces; special ids by name), for
        labelling attention."""
        return [self.tokenizer.decode([t]) if t >= len(SPECIAL_TOKENS) else SPECIAL_TOKENS[t] for t in tokens]


def load_seq2seq(path: str | Path, modality: Modality | None = None, device: str = "cpu") -> Seq2SeqPipeline:
    """Read a text-out checkpoint; ``modality``: refuse one whose encoder reads another kind of input.

    Raises:
        CheckpointError: one line naming the file: missing, unreadable, of another task, or not rebuildable.
    """
    checkpoint = read_checkpoint(path, TASK)
    target = resolve_device(device)
    try:
        pipeline = Seq2SeqPipeline(checkpoint, target)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # ValueError: unknown names, bad tokenizer
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path}: cannot rebuild the model from this checkpoint ({reason})") from None
    if modality is not None and pipeline.modality != modality:
        raise CheckpointError(
            f"{path}: a {pipeline.task} checkpoint (its model reads {pipeline.modality.value}), "
            f"but this command needs one whose model reads {modality.value}"
        )
    return pipeline


Wrapper = TypeVar("Wrapper")


def load_as(wrap: Callable[[Seq2SeqPipeline], Wrapper], path: str | Path, modality: Modality, device: str) -> Wrapper:
    """``load_seq2seq``, then ``wrap(pipeline)`` (an app's class); a CheckpointError of ``wrap`` names the file."""
    pipeline = load_seq2seq(path, modality, device)
    try:
        return wrap(pipeline)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None


class ImageCaptioner:
    """A captioning pipeline: PIL images in, captions (and attention maps over the image) out."""

    def __init__(self, pipeline: Seq2SeqPipeline):
        missing = [key for key in IMAGE_PREPROCESS_KEYS if key not in pipeline.preprocess]
        if pipeline.modality != Modality.IMAGE or missing:
            raise CheckpointError(f"not an image-captioning checkpoint (preprocess lacks {missing or 'nothing'})")
        self.pipeline = pipeline
        self.transform = preprocess_transform(pipeline.preprocess)
        self.attention_grid = self._attention_grid()

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> ImageCaptioner:
        """``load_seq2seq`` for image checkpoints; CheckpointError names the file."""
        return load_as(cls, path, Modality.IMAGE, device)

    def prepare(self, image: Image.Image) -> Tensor:
        """RGB image -> (3, H, W) float, as evaluation saw it."""
        return self.transform(TF.to_image(image))

    def caption(self, images: list[Image.Image], options: DecodingOptions | None = None) -> list[Generation]:
        """Caption RGB images (one batch); ``options.return_attention`` fills ``Generation.attention`` (L, T)."""
        inputs = torch.stack([self.prepare(image) for image in images])  # (B, 3, H, W)
        return self.pipeline.generate(inputs, options=options)

    def attention_maps(self, generation: Generation) -> Tensor | None:
        """(L, h, w): each output token's attention over the encoder's grid, or None when unknown."""
        if generation.attention is None or self.attention_grid is None:
            return None
        return generation.attention.reshape(-1, *self.attention_grid)

    @torch.no_grad()
    def _attention_grid(self) -> tuple[int, int] | None:
        """(h, w) of the grid whose cells are the memory rows, in row-major order (from the deepest
        feature map of a blank image); None when the encoder has no such grid."""
        encoder = self.pipeline.model.encoder
        if Emits.FEATURE_MAPS not in encoder.info.emits:
            return None
        height, width = self.pipeline.preprocess["image_size"]
        blank = torch.zeros(1, 3, height, width, device=self.pipeline.device)
        grid = tuple(encoder.encode_feature_maps(blank).features[-1].shape[-2:])
        rows = self.pipeline.model.encode(blank).memory.shape[1]
        return grid if grid[0] * grid[1] == rows else None
