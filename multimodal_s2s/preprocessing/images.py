"""Robust image loading shared by every image task (captioning, segmentation, the apps).

``load_image(path)`` returns an upright 8-bit RGB ``PIL.Image`` whatever the file holds:
grayscale, 16-bit or 32-bit integer, float, RGBA / LA (composited over white), palette
(with or without transparency), CMYK, YCbCr, LAB, 1-bit. Very large images are shrunk while
they are decoded (JPEG's reduced-scale decoding through ``Image.draft``, via ``thumbnail``) so
that they are never held at full size when a decoder can avoid it; ``max_pixels`` refuses larger
images from their header, before decoding. Anything that cannot be read raises ``ImageLoadError``,
a one-line message that names the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:  # a tensor is read without importing torch (the ONNX runtime has none)
    from torch import Tensor

from multimodal_s2s.errors import first_line

#: Longest side kept on load; larger images are downscaled (aspect kept) while decoding.
DEFAULT_MAX_SIDE = 4096
#: Colour that transparent pixels are composited over.
ALPHA_BACKGROUND = (255, 255, 255)
#: Divisor that maps 16-bit samples (0..65535) onto 8-bit ones (0..255).
UINT16_TO_UINT8 = 257
UINT8_MAX = 255
PIXELS_PER_MEGAPIXEL = 1_000_000
#: The per-channel statistics that ImageNet-trained backbones (timm, torchvision) expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageLoadError(ValueError):
    """A file that is missing, unreadable or not an image; the message is one line naming the file."""


class ImageTooLargeError(ImageLoadError):
    """An image with more pixels than allowed, refused from its header before any pixel is decoded."""


def load_image(
    source: str | os.PathLike | BinaryIO,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_pixels: int | None = None,
    name: str | None = None,
) -> Image.Image:
    """Read ``source`` (a path, or an open binary file called ``name`` in messages) as an upright 8-bit
    RGB image, its longest side at most ``max_side`` (None: no limit).

    ``max_pixels``: refuse images of more pixels, from the size in their header, before decoding.

    Raises:
        ImageTooLargeError: more pixels than ``max_pixels`` (or than PIL's decompression-bomb limit).
        ImageLoadError: missing file, a folder, not an image, corrupt or truncated data.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ImageLoadError(f"{path}: {'is a folder, not an image' if path.is_dir() else 'file not found'}")
    name = name or "image"
    try:
        with Image.open(source) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ImageTooLargeError(f"{name}: {_too_many_pixels(image.size, max_pixels)}")
            if max_side is not None and max(image.size) > max_side:
                image.thumbnail((max_side, max_side))  # draft(): JPEG decodes at a reduced scale
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{name}: too many pixels to load safely ({first_line(error)})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{name}: corrupt or unreadable image ({first_line(error)})") from None


def _too_many_pixels(size: tuple[int, int], max_pixels: int) -> str:
    megapixels = size[0] * size[1] / PIXELS_PER_MEGAPIXEL
    limit = max_pixels / PIXELS_PER_MEGAPIXEL
    return f"{size[0]} x {size[1]} pixels ({megapixels:.1f} MP) is more than the limit of {limit:.3g} MP"


def as_rgb_image(item: str | os.PathLike | Image.Image | np.ndarray | Tensor, max_side: int | None = DEFAULT_MAX_SIDE):
    """Any image a user may hold -> 8-bit RGB ``PIL.Image``: a file path (``load_image``), a PIL image
    (any mode), a numpy array (H, W) or (H, W, 3|4) of uint8 (or floats in 0..1), a tensor (3, H, W)
    or (H, W) of uint8 (or floats in 0..1). Raises ImageLoadError (one line) for anything else."""
    if isinstance(item, str | os.PathLike):
        return load_image(item, max_side)
    if type(item).__module__ == "torch" and type(item).__name__ == "Tensor":
        item = item.detach().cpu()
        item = (item.permute(1, 2, 0) if item.dim() == 3 else item).numpy()  # (H, W, C) or (H, W)
    if isinstance(item, np.ndarray):
        item = _array_to_image(item)
    if not isinstance(item, Image.Image):
        kind = type(item).__name__
        raise ImageLoadError(f"cannot read a {kind} as an image (give a path, PIL image, array or tensor)")
    if max_side is not None and max(item.size) > max_side:
        item = item.copy()
        item.thumbnail((max_side, max_side))
    return to_rgb(item)


def _array_to_image(array: np.ndarray) -> Image.Image:
    """(H, W) or (H, W, 1|3|4) uint8, or floats in 0..1 -> PIL image; ImageLoadError for other shapes."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)) or 0 in array.shape:
        raise ImageLoadError(f"an image array must be (H, W) or (H, W, 3|4), got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ImageLoadError(f"an image array must be uint8 or float in 0..1, got dtype {array.dtype}")
        array = np.clip(np.rint(np.nan_to_num(array) * UINT8_MAX), 0, UINT8_MAX).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: high bit depths rescaled, transparency composited over white."""
    if image.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, UINT8_MAX))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit integer images as 16-bit samples (>> 8), float images as 0..1 or 0..255 values."""
    values = np.asarray(image, dtype=np.float64)  # (H, W)
    if image.mode == "F":
        scale = UINT8_MAX if values.size and np.nanmax(values) <= 1.0 else 1.0
        values = np.nan_to_num(values) * scale
    else:
        values = values / UINT16_TO_UINT8
    grey = np.clip(np.rint(values), 0, UINT8_MAX).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")

