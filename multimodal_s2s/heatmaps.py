"""Pictures of where a model looked: the photo in greyscale under a single-hue heatmap.

Attention weights over the encoder's grid (h, w) are scaled to a common top (so that maps of
different words or classes compare), upsampled to the picture and drawn as one colour whose opacity
grows with the weight: with the photo's own colours gone, only the heat is coloured, and a red or
yellow object cannot look "hot" by itself. ``colour_bar`` draws the same scale. Used by the
captioning demo (one map per word) and by the Segmenter (one map per class).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps
from torch import Tensor

#: The heatmap's one hue (a strong orange, far from any grey) and its opacity at the top of the scale.
HEAT_COLOUR = (255, 110, 0)
HEAT_OPACITY = 0.85
#: The grey that the colour bar shows the scale over.
COLOUR_BAR_GREY = 128
COLOUR_BAR_SIZE = (256, 14)


def heat_over(grey: np.ndarray, heat: np.ndarray) -> Image.Image:
    """grey (H, W) 0..255 and heat (H, W) 0..1 -> RGB: the heat colour over the grey, its opacity
    HEAT_OPACITY * heat."""
    alpha = (HEAT_OPACITY * np.clip(heat, 0.0, 1.0))[..., None]  # (H, W, 1)
    mixed = grey[..., None] * (1.0 - alpha) + np.asarray(HEAT_COLOUR, dtype=np.float32) * alpha  # (H, W, 3)
    return Image.fromarray(np.rint(mixed).astype(np.uint8), "RGB")


def attention_scale(maps: Tensor) -> float:
    """The top of the colour scale for maps (L, h, w): the largest weight of them all (> 0)."""
    return max(float(maps.float().max()), float(np.finfo(np.float32).tiny))


def heatmaps(picture: Image.Image, maps: Tensor, top: float) -> list[Image.Image]:
    """One heatmap per map (L, h, w) over ``picture`` in greyscale; weights are shares of ``top``."""
    grey = np.asarray(ImageOps.grayscale(picture), dtype=np.float32)  # (H, W)
    pictures = []
    for weights in maps.float().clamp_min(0).numpy():  # (h, w)
        cells = Image.fromarray((weights / top).astype(np.float32), "F")
        heat = np.asarray(cells.resize(picture.size, Image.BILINEAR))  # (H, W)
        pictures.append(heat_over(grey, heat))
    return pictures


def colour_bar(size: tuple[int, int] = COLOUR_BAR_SIZE) -> Image.Image:
    """The heatmap's scale (width, height) from no attention (left) to the top of the scale (right),
    over mid grey."""
    width, height = size
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))  # (height, width)
    return heat_over(np.full((height, width), COLOUR_BAR_GREY, dtype=np.float32), ramp)
