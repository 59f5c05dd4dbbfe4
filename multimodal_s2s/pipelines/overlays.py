"""Overlays a person can read: class colours over the photo, with a legend; sheets of titled heatmaps.

Pixels of the background class (when one is chosen) and unlabelled pixels (values that are no class,
such as a dataset's void label) keep the photo's own colours; every other pixel is blended with its
class's colour. The legend, drawn in a panel to the right of the photo, lists each class present
with its colour swatch and its share of the pixels, largest first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LEGEND_BACKGROUND = (255, 255, 255)
LEGEND_TEXT = (20, 20, 20)
MIN_FONT_PIXELS, FONT_FRACTION = 11, 1 / 24  # legend text height: this share of the image height, at least the min
PADDING_FRACTION = 0.5  # of the font size, around and between rows
SHEET_COLUMNS = 4  # heatmaps per row of an attention sheet


def blend_classes(
    image: Image.Image, labels: np.ndarray, palette: np.ndarray, alpha: float, unblended: set[int]
) -> Image.Image:
    """``image`` with each pixel's class colour blended in at ``alpha``, except pixels whose label is in
    ``unblended`` or is no class (>= len(palette))."""
    pixels = np.asarray(image, dtype=np.float32)  # (H, W, 3)
    coloured = (labels < len(palette)) & ~np.isin(labels, list(unblended))  # (H, W)
    colours = palette[np.where(coloured, labels, 0)].astype(np.float32)
    blended = np.where(coloured[..., None], (1 - alpha) * pixels + alpha * colours, pixels)
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def legend_rows(labels: np.ndarray, class_names: list[str], background: int | None) -> list[tuple[int, str]]:
    """(class index, "name  12.3%") of each class present, largest share first; the background is
    marked as not coloured."""
    counts = np.bincount(labels.ravel(), minlength=len(class_names))[: len(class_names)]
    rows = []
    for index in np.argsort(-counts, kind="stable"):
        if counts[index]:
            note = " (not coloured)" if index == background else ""
            rows.append((int(index), f"{class_names[index]}  {100 * counts[index] / labels.size:.1f}%{note}"))
    return rows


def with_legend(overlay: Image.Image, rows: list[tuple[int, str]], palette: np.ndarray) -> Image.Image:
    """``overlay`` with a legend panel on its right: a colour swatch and a text per row."""
    size = max(MIN_FONT_PIXELS, round(overlay.height * FONT_FRACTION))
    font = ImageFont.load_default(size=size)
    padding = max(1, round(size * PADDING_FRACTION))
    measure = ImageDraw.Draw(overlay)
    text_width = max((measure.textlength(text, font=font) for _, text in rows), default=0)
    panel_width = round(3 * padding + size + text_width)
    height = max(overlay.height, padding + len(rows) * (size + padding))
    canvas = Image.new("RGB", (overlay.width + panel_width, height), LEGEND_BACKGROUND)
    canvas.paste(overlay, (0, 0))
    draw = ImageDraw.Draw(canvas)
    left = overlay.width + padding
    for number, (index, text) in enumerate(rows):
        top = padding + number * (size + padding)
        draw.rectangle([left, top, left + size, top + size], fill=tuple(int(v) for v in palette[index]),
                       outline=LEGEND_TEXT)
        draw.text((left + size + padding, top), text, fill=LEGEND_TEXT, font=font)
    return canvas


def attention_sheet(
    pictures: list[Image.Image], titles: list[str], colour_bar: Callable[[tuple[int, int]], Image.Image]
) -> Image.Image:
    """``pictures`` (all of one size) side by side in rows of up to SHEET_COLUMNS, each under its
    title, with ``colour_bar((width, height))`` across the bottom, labelled "0" and "max"."""
    width, height = pictures[0].size
    size = max(MIN_FONT_PIXELS, round(height * FONT_FRACTION))
    font = ImageFont.load_default(size=size)
    padding = max(1, round(size * PADDING_FRACTION))
    columns = min(SHEET_COLUMNS, len(pictures))
    rows = -(-len(pictures) // columns)
    cell_width, cell_height = width + padding, size + 2 * padding + height
    canvas = Image.new("RGB", (padding + columns * cell_width, rows * cell_height + 3 * size + 3 * padding),
                       LEGEND_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for number, (picture, title) in enumerate(zip(pictures, titles, strict=True)):
        left, top = padding + (number % columns) * cell_width, (number // columns) * cell_height
        draw.text((left, top + padding), title, fill=LEGEND_TEXT, font=font)
        canvas.paste(picture, (left, top + size + 2 * padding))
    bar_top, label_width = rows * cell_height + padding, round(draw.textlength("max", font=font))
    bar_left = 2 * padding + label_width
    bar_width = max(1, canvas.width - 2 * bar_left)
    draw.text((padding, bar_top), "0", fill=LEGEND_TEXT, font=font)
    canvas.paste(colour_bar((bar_width, size)), (bar_left, bar_top))
    draw.text((bar_left + bar_width + padding, bar_top), "max", fill=LEGEND_TEXT, font=font)
    return canvas
