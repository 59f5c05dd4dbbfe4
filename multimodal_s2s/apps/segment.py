"""Segment images with a segmentation checkpoint.

    mms2s segment photo.jpg more_photos/ --checkpoint runs/.../best.ckpt --out results/

For each image NAME.ext it writes ``results/NAME_labels.png`` (one class index per pixel, as a
palette PNG coloured with the checkpoint's palette) and ``results/NAME_overlay.png`` (the class
colours blended over the photo), both at the image's size. Images are resized to the training
size for the network and the class scores are resized back. Inputs are never overwritten; files
that cannot be read are reported and skipped, and the exit code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from multimodal_s2s.checkpoint import CHECKPOINT_KEY, CheckpointError, model_from_checkpoint, read_checkpoint
from multimodal_s2s.data.images import (
    DEFAULT_MAX_SIDE,
    ImageLoadError,
    expand_image_inputs,
    load_image,
    normalized_tensor,
)

TASK = "segmentation"
DEFAULT_ALPHA = 0.5
PALETTE_SIZE = 256  # entries of a PNG palette
EXIT_FAILED_FILES, EXIT_BAD_SETUP = 1, 2


class ImageSegmenter:
    """A segmentation checkpoint ready for inference: ``labels(image)``, then ``label_image`` and ``overlay``."""

    def __init__(self, checkpoint: dict[str, Any], device: str = "cpu"):
        meta = checkpoint[CHECKPOINT_KEY]
        self.device = torch.device(device)
        self.model = model_from_checkpoint(checkpoint).to(self.device)
        self.class_names: list[str] = meta["class_names"]
        self.palette = np.asarray(meta["palette"], dtype=np.uint8)  # (C, 3)
        if len(self.palette) > PALETTE_SIZE:
            raise ValueError(f"label PNGs hold at most {PALETTE_SIZE} classes, this checkpoint has {len(self.palette)}")
        preprocess = meta["preprocess"]
        self.image_size = tuple(preprocess["image_size"])  # (H, W)
        self.mean, self.std = tuple(preprocess["mean"]), tuple(preprocess["std"])

    @torch.no_grad()
    def labels(self, image: Image.Image) -> np.ndarray:
        """RGB image (W x H) -> (H, W) uint8 class indices."""
        pixels = normalized_tensor(image.resize(self.image_size[::-1], Image.BILINEAR), self.mean, self.std)
        logits = self.model(pixels.unsqueeze(0).to(self.device))  # (1, C, h, w)
        logits = F.interpolate(logits.float(), size=image.size[::-1], mode="bilinear", align_corners=False)
        return logits[0].argmax(0).to(torch.uint8).cpu().numpy()  # (H, W)

    def label_image(self, labels: np.ndarray) -> Image.Image:
        """(H, W) class indices -> palette PNG image ('P'): pixel value = class, colour = palette."""
        image = Image.fromarray(labels.astype(np.uint8))  # 'L'; putpalette makes it 'P', values kept
        flat = np.zeros((PALETTE_SIZE, 3), dtype=np.uint8)
        flat[: len(self.palette)] = self.palette
        image.putpalette(flat.flatten().tolist())
        return image

    def overlay(self, image: Image.Image, labels: np.ndarray, alpha: float = DEFAULT_ALPHA) -> Image.Image:
        """The class colours blended over ``image`` with opacity ``alpha``."""
        colours = Image.fromarray(self.palette[labels])  # (H, W, 3)
        return Image.blend(image, colours, alpha)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files, or folders whose images to segment")
    parser.add_argument("--checkpoint", required=True, help="a segmentation checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="opacity of the colours in overlays")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument(
        "--max-side", type=int, default=DEFAULT_MAX_SIDE, help="larger images are downscaled to this longest side"
    )


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        return _fail(f"--alpha must be in 0..1, got {args.alpha}")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        return _fail(f"{out_dir}: --out must be a folder, and this is a file")
    try:
        device = _device(args.device)
        segmenter = ImageSegmenter(read_checkpoint(args.checkpoint, TASK), device)
    except (CheckpointError, ValueError, RuntimeError) as error:
        return _fail(str(error))
    inputs, failures = expand_image_inputs(args.images)
    out_dir.mkdir(parents=True, exist_ok=True)
    planned: dict[Path, Path] = {}  # output -> the input it belongs to
    protected = {path.resolve() for path in inputs}
    for path in inputs:
        outputs = [out_dir / f"{path.stem}_labels.png", out_dir / f"{path.stem}_overlay.png"]
        problem = _output_problem(path, outputs, protected, planned)
        if problem is None:
            problem = _segment_one(segmenter, path, outputs, args)
        if problem is not None:
            failures.append(problem)
    for problem in failures:
        print(f"error: {problem}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} file(s) failed, {len(inputs) - len(failures)} segmented", file=sys.stderr)
    return EXIT_FAILED_FILES if failures else 0


def _segment_one(segmenter: ImageSegmenter, path: Path, outputs: Sequence[Path], args) -> str | None:
    """Writes both PNGs for ``path``; returns the one-line problem, or None."""
    try:
        image = load_image(path, max_side=args.max_side)
        labels = segmenter.labels(image)
        segmenter.label_image(labels).save(outputs[0])
        segmenter.overlay(image, labels, args.alpha).save(outputs[1])
    except (ImageLoadError, ValueError) as error:
        return str(error)
    except OSError as error:
        return f"{path}: could not write the outputs ({error})"
    print(f"{path} -> {outputs[0]}, {outputs[1]}")
    return None


def _output_problem(path: Path, outputs: Sequence[Path], protected: set[Path], planned: dict[Path, Path]) -> str | None:
    """Refuse outputs that are an input file or that an earlier input of this run already writes."""
    for output in outputs:
        resolved = output.resolve()
        if resolved in protected:
            return f"{path}: skipped, its output {output} would overwrite an input file"
        if resolved in planned:
            return f"{path}: skipped, its output {output} is already written for {planned[resolved]}"
    for output in outputs:
        planned[output.resolve()] = path
    return None


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available")
    return name


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_SETUP
