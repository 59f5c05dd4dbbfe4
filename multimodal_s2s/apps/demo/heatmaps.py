"""The demo page's pictures: data URLs and display sizes (the drawing is ``multimodal_s2s.heatmaps``)."""

from __future__ import annotations

import base64
import io

from PIL import Image

#: Longest side of the pictures sent to the page (images are scaled to it, small ones enlarged).
DISPLAY_SIDE = 384


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def display_copy(image: Image.Image) -> Image.Image:
    """``image`` scaled so that its longest side is DISPLAY_SIDE (small images are enlarged too, so that
    their heatmaps are legible)."""
    scale = DISPLAY_SIDE / max(image.size)
    return image.resize([max(1, round(side * scale)) for side in image.size], Image.BICUBIC)
