"""Joint image + mask transforms for segmentation, on torchvision's ``transforms.v2``.

The image and its mask go through one transform call as an ``Image`` and a ``Mask`` tv_tensor,
so every random choice (scale, crop window, flip) is shared, and masks are always resized with
nearest-neighbour sampling (class indices are never blended). Crops padded past the border get
the ignore index in the mask, so padding never counts in the loss or the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from multimodal_s2s.preprocessing.images import IMAGENET_MEAN, IMAGENET_STD

#: Scale factors drawn for training images, relative to the training size.
DEFAULT_SCALE_RANGE = (0.5, 2.0)
#: Value given to image pixels added by padding (before normalization: black).
IMAGE_PAD_VALUE = 0


def segmentation_transform(
    image_size: Sequence[int],
    train: bool,
    ignore_index: int,
    scale_range: Sequence[float] | None = DEFAULT_SCALE_RANGE,
    hflip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """The transform of one split: ``transform(Image (3, H, W) uint8, Mask (H, W)) -> (float image, mask)``.

    Training (``train=True``): random scale (``scale_range`` times the size that fits ``image_size``;
    None: no scaling), a random ``image_size`` crop (padded where the scaled image is smaller),
    a random horizontal flip (``hflip``). Evaluation: resize to ``image_size``. Both then scale the
    image to 0..1 and normalize it with ``mean`` and ``std``.

    Args:
        image_size: (H, W) of every output.
    """
    size = _checked_size(image_size)
    if train:
        steps: list[v2.Transform] = []
        if scale_range is not None:
            low, high = scale_range
            if not 0 < low <= high:
                raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {tuple(scale_range)}")
            steps.append(v2.ScaleJitter(target_size=size, scale_range=(low, high)))
        fill = {tv_tensors.Image: IMAGE_PAD_VALUE, tv_tensors.Mask: ignore_index}
        steps.append(v2.RandomCrop(size, pad_if_needed=True, fill=fill))
        if hflip:
            steps.append(v2.RandomHorizontalFlip())
    else:
        steps = [v2.Resize(size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def as_tv_tensors(image: Image.Image, mask: np.ndarray) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """RGB image (W x H) and mask (H, W) of class indices -> uint8 Image (3, H, W) and int64 Mask (H, W)."""
    return v2.functional.to_image(image), tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))


def apply_transform(transform: v2.Compose, image: Image.Image, mask: np.ndarray) -> tuple[Tensor, Tensor]:
    """-> normalized image float (3, H', W') and mask long (H', W'), plain tensors."""
    image_tensor, mask_tensor = transform(*as_tv_tensors(image, mask))
    return image_tensor.as_subclass(Tensor), mask_tensor.as_subclass(Tensor)


def _checked_size(image_size: Sequence[int]) -> tuple[int, int]:
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(f"image_size must be [height, width] of positive integers, got {list(image_size)}")
    return int(image_size[0]), int(image_size[1])
