"""Segmenter: images in (paths, PIL images, arrays, tensors), per-pixel class maps out, at each image's size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torchvision.transforms.v2 import functional as TF

from multimodal_s2s.checkpoint import Checkpoint, Task
from multimodal_s2s.heatmaps import attention_scale, colour_bar, heatmaps
from multimodal_s2s.pipelines.base import Pipeline, batches
from multimodal_s2s.pipelines.captioning import ImageInput
from multimodal_s2s.pipelines.overlays import attention_sheet, blend_classes, legend_rows, with_legend
from multimodal_s2s.preprocessing.images import DEFAULT_MAX_SIDE, as_rgb_image
from multimodal_s2s.preprocessing.segmentation_transforms import segmentation_transform

DEFAULT_ALPHA = 0.5
#: The class an overlay leaves uncoloured by default, when the checkpoint has one of this name.
BACKGROUND_NAME = "background"
PALETTE_SIZE = 256  # entries of a PNG palette
DEFAULT_BATCH_SIZE = 4


def default_background(class_names: Sequence[str]) -> str | None:
    """The class an overlay leaves uncoloured unless one is named: ``BACKGROUND_NAME`` when it is one of
    ``class_names``, else None (every class coloured)."""
    return BACKGROUND_NAME if BACKGROUND_NAME in class_names else None


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
        class_attention: (C, h, w) float, where each class embedding looked over the decoder's grid
            (each map sums to 1), when asked of a decoder that has it (``mask_transformer``); else None.
    """

    labels: np.ndarray
    image: Image.Image
    class_names: list[str]
    palette: np.ndarray
    class_attention: np.ndarray | None = None

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

    def class_attention_image(self, classes: list[str] | None = None) -> Image.Image:
        """One heatmap per class (default: the classes present in ``labels``) over the image in
        greyscale, titled with the class name, on one scale shown by a colour bar underneath."""
        if self.class_attention is None:
            raise ValueError("no class attention: segment with class_attention=True and a mask_transformer decoder")
        unknown = sorted(set(classes or ()) - set(self.class_names))
        if unknown:
            known = ", ".join(self.class_names)
            raise ValueError(f"unknown class(es) {', '.join(unknown)}; the checkpoint has {known}")
        names = classes or list(self.class_fractions())
        maps = torch.from_numpy(self.class_attention[[self.class_names.index(name) for name in names]])
        return attention_sheet(heatmaps(self.image, maps, attention_scale(maps)), names, colour_bar)


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
        prep = self.header.preprocessing
        self.transform = segmentation_transform(
            prep.image_size, train=False, ignore_index=labels.ignore_index, mean=prep.mean, std=prep.std
        )

    @torch.no_grad()
    def __call__(
        self,
        images: list[ImageInput],
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_side: int | None = DEFAULT_MAX_SIDE,
        class_attention: bool = False,
    ) -> list[Segmentation]:
        """Segment ``images``: each is resized to the training size for the network, and its class scores
        are resized back to the image's own size. With ``class_attention`` (mask_transformer decoders
        only; ValueError otherwise), each result carries the per-class attention maps too. Raises
        ImageLoadError (one line) for a non-image."""
        if class_attention and not self.model.draws_class_attention:
            raise ValueError(f"{self.path}: its {self.header.model.decoder!r} decoder has no class attention "
                             "(mask_transformer has)")
        results: list[Segmentation] = []
        for batch in batches(list(images), batch_size):
            loaded = [as_rgb_image(item, max_side) for item in batch]
            pixels = torch.stack([self._prepare(image) for image in loaded]).to(self.device)  # (B, 3, H, W)
            if class_attention:
                logits, attention = self.model.logits_and_class_attention(pixels)  # (B, C, H, W), (B, C, h, w)
                attention = attention.float().cpu().numpy()
            else:
                logits, attention = self.model(pixels), [None] * len(loaded)
            for image, image_logits, maps in zip(loaded, logits, attention, strict=True):
                labels = self._labels(image_logits, image.size)
                results.append(Segmentation(labels, image, self.class_names, self.palette, maps))
        return results

    def _prepare(self, image: Image.Image) -> torch.Tensor:
        """RGB image -> (3, H, W) normalized at the training size, as evaluation prepares it in training."""
        return self.transform(TF.to_image(image)).as_subclass(torch.Tensor)

    @staticmethod
    def _labels(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(C, h, w) scores -> (H, W) uint8 classes at ``size`` = (W, H)."""
        logits = F.interpolate(logits[None].float(), size=size[::-1], mode="bilinear", align_corners=False)
        return logits[0].argmax(0).to(torch.uint8).cpu().numpy()
