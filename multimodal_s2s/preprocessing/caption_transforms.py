"""Image transforms of the captioning task (torchvision ``transforms.v2``), the same in training
(``data.captioning``) and inference (``Captioner``, ``mms2s caption``, the demo)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from multimodal_s2s.preprocessing.images import IMAGENET_MEAN, IMAGENET_STD

#: Aspect ratios drawn by the random resized crop of training images.
CROP_RATIO_RANGE = (3 / 4, 4 / 3)


def caption_transform(
    image_size: Sequence[int],
    train: bool = False,
    crop_scale: Sequence[float] | None = None,
    color_jitter: float = 0.0,
    hflip: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """uint8 image (3, h, w) -> float (3, H, W) normalized; ``image_size`` = (H, W).

    Evaluation resizes to ``image_size``. Training (``train``) can add a random resized crop covering
    ``crop_scale`` of the area, brightness/contrast/saturation jitter (no hue: colours are named in
    captions) and a horizontal flip (off by default: it swaps "left" and "right").
    """
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(f"image_size must be [height, width] of positive integers, got {list(image_size)}")
    size = [int(side) for side in image_size]
    steps: list[v2.Transform] = []
    if train and crop_scale is not None:
        steps.append(v2.RandomResizedCrop(size, scale=tuple(crop_scale), ratio=CROP_RATIO_RANGE))
    else:
        steps.append(v2.Resize(size))
    if train and color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    if train and hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)
