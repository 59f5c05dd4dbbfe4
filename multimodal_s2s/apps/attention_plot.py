"""Attention heatmaps: (L_out, L_src) weights with token labels, written as a PNG a person can read.

Source tokens run along the top (x axis), output tokens down the side (y axis), as in Bahdanau et
al. (2014, figure 3): a monotone alignment shows as a diagonal, a reordering as off-diagonal blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from multimodal_s2s.outputs import atomic_write

#: Figure inches per token cell, and the smallest figure side.
INCHES_PER_TOKEN = 0.32
MIN_SIDE_INCHES = 3.0
#: Room for the labels and the colour bar around the cells.
MARGIN_INCHES = 1.8
DPI = 150
COLOUR_MAP = "Greys"
#: matplotlib's usual settings for a colour bar as tall as the image.
COLOUR_BAR = {"fraction": 0.046, "pad": 0.04}
#: The colour scale's top when every weight is 0.
SMALLEST_SCALE = 1e-9
#: Room between the title and the source labels above the cells.
TITLE_PAD_POINTS = 12
#: Labels longer than this are cut with an ellipsis.
MAX_LABEL_CHARS = 16
#: Whitespace shown visibly in labels (a BPE or char token may be just a space).
VISIBLE_SPACE = "\u2423"


def readable_label(token: str) -> str:
    """A token as a tick label: spaces made visible, control characters escaped, long ones cut."""
    label = token.replace(" ", VISIBLE_SPACE)
    label = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in label)
    if not label:
        return "''"
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "\u2026"


def save_attention_plot(
    weights: Tensor | np.ndarray,
    source_tokens: Sequence[str],
    output_tokens: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Write a heatmap of ``weights`` (L_out, L_src), rows labelled ``output_tokens`` and columns
    ``source_tokens``, to the PNG ``path`` (folders created; written atomically). Returns the path.

    Drawn on a bare matplotlib ``Figure`` (no pyplot): no window, no global backend change."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("attention plots need matplotlib: pip install matplotlib") from error
    grid = weights.detach().float().cpu().numpy() if isinstance(weights, Tensor) else np.asarray(weights, float)
    expected = (len(output_tokens), len(source_tokens))
    if grid.ndim != 2 or grid.shape != expected:
        raise ValueError(f"attention weights of shape {grid.shape} do not match (outputs, sources) = {expected}")
    if grid.size == 0:
        raise ValueError("nothing to plot: the source or the output is empty")
    width = max(MIN_SIDE_INCHES, INCHES_PER_TOKEN * grid.shape[1]) + MARGIN_INCHES
    height = max(MIN_SIDE_INCHES, INCHES_PER_TOKEN * grid.shape[0]) + MARGIN_INCHES
    figure = Figure(figsize=(width, height))
    axes = figure.subplots()
    image = axes.imshow(grid, cmap=COLOUR_MAP, vmin=0.0, vmax=max(float(grid.max()), SMALLEST_SCALE))
    axes.set_xticks(range(grid.shape[1]), [readable_label(t) for t in source_tokens], rotation=90)
    axes.set_yticks(range(grid.shape[0]), [readable_label(t) for t in output_tokens])
    axes.xaxis.tick_top()
    axes.xaxis.set_label_position("top")
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.colorbar(image, ax=axes, label="attention weight", **COLOUR_BAR)
    if title:
        axes.set_title(title, fontsize="small", pad=TITLE_PAD_POINTS)
    figure.tight_layout()
    path = Path(path)
    atomic_write(path, lambda file: figure.savefig(file, dpi=DPI, format="png"))
    return path
