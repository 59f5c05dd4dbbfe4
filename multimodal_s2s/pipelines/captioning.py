"""Captioner: images in (paths, PIL images, arrays, tensors), captions out, with attention over the image."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from multimodal_s2s.checkpoint import Checkpoint, Task
from multimodal_s2s.decoding import decode
from multimodal_s2s.pipelines.base import batches
from multimodal_s2s.pipelines.text import TextGeneration, TextOutPipeline, attention_of
from multimodal_s2s.preprocessing.caption_transforms import caption_transform
from multimodal_s2s.preprocessing.images import DEFAULT_MAX_SIDE, as_rgb_image
from multimodal_s2s.registry import decoder_entry

ImageInput = str | os.PathLike | Image.Image | np.ndarray | Tensor
DEFAULT_BATCH_SIZE = 16


@dataclass
class Caption(TextGeneration):
    """A caption (see TextGeneration) and, when asked for, ``attention`` (len(tokens), h, w): each
    token's cross-attention over the encoder's grid of image cells (None when the encoder has none)."""

    attention: Tensor | None = None


class Captioner(TextOutPipeline):
    """A captioning checkpoint ready for inference.

    >>> captioner = Captioner.from_checkpoint("runs/captioning/shapes/version_0/checkpoints/last.ckpt")
    >>> captioner(["scene.png"])[0].text
    'a small red circle left of a large blue square'
    """

    task = Task.CAPTIONING

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "auto"):
        super().__init__(checkpoint, device)
        image = self.header.preprocessing
        self.transform = caption_transform(image.image_size, mean=image.mean, std=image.std)
        grid = self.model.encoder.info.grid
        attends = decoder_entry(self.header.model.decoder).attends
        #: (h, w) of the grid over the image whose cells are the memory rows (row-major), as the encoder
        #: declares it; None when the encoder has no such grid or the decoder shows no attention.
        self.attention_grid = grid.size(image.image_size) if grid is not None and attends else None

    def __call__(
        self,
        images: list[ImageInput],
        beam_size: int | None = None,
        n_best: int | None = None,
        max_length: int | None = None,
        return_attention: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_side: int | None = DEFAULT_MAX_SIDE,
        no_repeat_ngram_size: int | None = None,
    ) -> list[Caption]:
        """Caption ``images`` (any mode is converted to RGB; larger than ``max_side`` shrunk on load).
        Decoding defaults (beam size, length, repeated n-gram ban) are the checkpoint's validation settings.
        Raises ImageLoadError (one line naming the file) for an input that is not an image."""
        options = self.options(beam_size, n_best, max_length, return_attention, no_repeat_ngram_size)
        captions: list[Caption] = []
        for batch in batches(list(images), batch_size):
            pixels = torch.stack([self.prepare(as_rgb_image(item, max_side)) for item in batch])  # (B, 3, H, W)
            for result in decode(self.model, pixels.to(self.device), options):
                generation = self.generation(result)
                captions.append(Caption(**vars(generation), attention=self._maps(attention_of(result))))
        return captions

    def prepare(self, image: Image.Image) -> Tensor:
        """RGB image -> (3, H, W) float, as evaluation saw it."""
        return self.transform(TF.to_image(image))

    def _maps(self, attention: Tensor | None) -> Tensor | None:
        """(L, T) attention over the memory rows -> (L, h, w) over the image grid, or None."""
        if attention is None or self.attention_grid is None:
            return None
        return attention.reshape(-1, *self.attention_grid)
