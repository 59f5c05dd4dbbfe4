"""Segmenter: images in (paths, PIL images, arrays, tensors), per-pixel class maps out, at each image's size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from multimodal_s2s.checkpoint import Checkpoint, Task
from multimodal_s2s.data.images import DEFAULT_MAX_SIDE, as_rgb_image, normalized_tensor
from multimodal_s2s.pipelines.base import Pipeline, batches
from multimodal_s2s.pipelines.captioning import ImageInput
from multimodal_s2s.pipelines.overlays import blend_classes, legend_rows, with_legend

DEFAULT_ALPHA = 0.5
#: The class an overlay leaves uncoloured by default, when the checkpoint has one of this name.
BACKGROUND_NAME = "background"
PALETTE_SIZE = 256  # entries of a PNG palette
DEFAULT_BATCH_SIZE = 4


def label_image(labels: np.ndarray, palette: np.ndarray) -> Image.Image:
    """(H, W) uint8 class indices -> a palette image ('P'): pixel value = class, colour = ``palette`` (C, 3)."""
    image = Image.fromarray(labels)  # 'L'; putpalette makes it 'P', values kept
    flat = np.zeros((PALETTE_SIZE, 3), dtype=np.uint8)
    flat[: len(palette)] = palette
    image.putpalette(flat.flatten().tolist())
    return image


def class_fractions(labels: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """The share of the pixels of ``labels`` (H, W) given to each class present."""
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    return {name: float(n) / labels.size for name, n in zip(class_names, counts, strict=False) if n}


@dataclass
class Segmentation:
    """One image's segmentation.

    Attributes:
        labels: (H, W) uint8 class index of each pixel, at the input image's size.
        image: the RGB image it was computed from (after loading), for overlays.
        class_names: the checkpoint's classes (``labels`` indexes them).
        palette: (C, 3) uint8, one colour per class.
    """

    labels: np.ndarray
    image: Image.Image
    class_names: list[str]
    palette: np.ndarray

    def label_image(self) -> Image.Image:
        """A palette PNG image ('P'): pixel value = class index, colour = the class's palette entry."""
        return label_image(self.labels, self.palette)

    def overlay(self, alpha: float = DEFAULT_ALPHA, background: str | None = None, legend: bool = True) -> Image.Image:
        """The class colours blended over the image with opacity ``alpha`` (0..1), except on pixels of the
        ``background`` class (a class name) and unlabelled ones; with ``legend``, a panel on the right
        names each class present with its colour and share (see ``pipelines.overlays``)."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in 0..1, got {alpha}")
        if background is not None and background not in self.class_names:
            raise ValueError(f"background class {background!r} is not one of {', '.join(self.class_names)}")
        index = None if background is None else self.class_names.index(background)
        overlay = blend_classes(self.image, self.labels, self.palette, alpha, set() if index is None else {index})
        if not legend:
            return overlay
        return with_legend(overlay, legend_rows(self.labels, self.class_names, index), self.palette)

    def class_fractions(self) -> dict[str, float]:
        """The share of the image's pixels given to each class present."""
        return class_fractions(self.labels, self.class_names)


class Segmenter(Pipeline):
    """A segmentation checkpoint ready for inference.

    >>> segmenter = Segmenter.from_checkpoint("runs/segmentation/shapes/version_0/checkpoints/last.ckpt")
    >>> result = segmenter(["street.jpg"])[0]
    >>> result.labels.shape, result.class_fractions()
    """

    task = Task.SEGMENTATION

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "auto"):
        super().__init__(checkpoint, device)
        labels = self.header.labels
        if len(labels.class_names) > PALETTE_SIZE:
            count = len(labels.class_names)
            raise ValueError(f"label maps hold at most {PALETTE_SIZE} classes, {self.path} has {count}")
        self.class_names = list(labels.class_names)
        self.palette = np.asarray(labels.palette, dtype=np.uint8)  # (C, 3)

    @torch.no_grad()
    def __call__(
        self, images: list[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE, max_side: int | None = DEFAULT_MAX_SIDE
    ) -> list[Segmentation]:
        """Segment ``images``: each is resized to the training size for the network, and its class scores
        are resized back to the image's own size. Raises ImageLoadError (one line) for a non-image."""
        results: list[Segmentation] = []
        for batch in batches(list(images), batch_size):
            loaded = [as_rgb_image(item, max_side) for item in batch]
            logits = self.model(torch.stack([self._prepare(image) for image in loaded]).to(self.device))  # (B, C, h, w)
            for image, image_logits in zip(loaded, logits, strict=True):
                results.append(Segmentation(self._labels(image_logits, image.size), image, self.class_names,
                                            self.palette))  # fmt: skip
        return results

    def _prepare(self, image: Image.Image) -> torch.Tensor:
        """RGB image -> (3, H, W) normalized at the training size."""
        prep = self.header.preprocessing
        return normalized_tensor(image.resize(prep.image_size[::-1], Image.BILINEAR), prep.mean, prep.std)

    @staticmethod
    def _labels(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(C, h, w) scores -> (H, W) uint8 classes at ``size`` = (W, H)."""
        logits = F.interpolate(logits[None].float(), size=size[::-1], mode="bilinear", align_corners=False)
        return logits[0].argmax(0).to(torch.uint8).cpu().numpy()
