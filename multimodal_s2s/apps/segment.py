"""Segment images with a segmentation checkpoint.

    mms2s segment photo.jpg more_photos/ --checkpoint runs/.../best.ckpt [--output-dir results/]

For each image NAME.ext it writes ``NAME_labels.png`` (one class index per pixel, as a palette PNG
coloured with the checkpoint's palette) and ``NAME_overlay.png`` (the class colours blended over the
photo, the background class and unlabelled pixels left as they are, and a legend panel on the right
naming each class present with its colour and share), the photo at its own size, and with
--class-attention (mask_transformer checkpoints) ``NAME_class_attention.png`` (where each class
present looked: one heatmap per class over the photo in greyscale, one colour bar), into
``--output-dir`` (default: the current folder), through ``multimodal_s2s.Segmenter``. Inputs are
never written over, nor existing files unless --overwrite is given; files are written atomically.
Files that cannot be read are reported and skipped, and the exit code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multimodal_s2s.apps.common import FileCount, add_checkpoint_arguments, add_output_arguments, fail
from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.outputs import OutputError, OutputPlan, atomic_write, check_output_dir
from multimodal_s2s.pipelines import Segmenter
from multimodal_s2s.pipelines.segmentation import BACKGROUND_NAME, DEFAULT_ALPHA, default_background
from multimodal_s2s.preprocessing.files import IMAGE_SUFFIXES, expand_inputs
from multimodal_s2s.preprocessing.images import DEFAULT_MAX_SIDE, ImageLoadError, load_image


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files, or folders whose images to segment")
    add_checkpoint_arguments(parser, "a segmentation checkpoint (.ckpt), Hub folder or Hub repository id")
    add_output_arguments(parser, "the PNGs")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="opacity of the colours in overlays")
    parser.add_argument(
        "--background", default=None,
        help=f"class left uncoloured in overlays (default: {BACKGROUND_NAME!r} when the checkpoint has it; 'none')",
    )
    parser.add_argument("--no-legend", action="store_true", help="overlays without the legend panel")
    parser.add_argument(
        "--class-attention", action="store_true",
        help="also write NAME_class_attention.png: each present class's attention map (mask_transformer only)",
    )
    parser.add_argument(
        "--max-side", type=int, default=DEFAULT_MAX_SIDE, help="larger images are downscaled to this longest side"
    )


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        return fail(f"--alpha must be in 0..1, got {args.alpha}")
    try:
        out_dir = check_output_dir(args.output_dir)
        segmenter = Segmenter.from_checkpoint(args.checkpoint, args.device)
        args.background = _background(args.background, segmenter.class_names)
        if args.class_attention and not segmenter.model.draws_class_attention:
            raise ValueError(f"--class-attention: the {segmenter.header.model.decoder!r} decoder of {args.checkpoint} "
                             "has no class attention (mask_transformer has)")
    except (CheckpointError, OutputError, ValueError) as error:
        return fail(str(error))
    inputs, problems = expand_inputs(args.images, IMAGE_SUFFIXES, "images")
    count = FileCount("segmented", problems)
    plan = OutputPlan(inputs, args.overwrite)
    for path in inputs:
        kinds = ("labels", "overlay", "class_attention")[: 3 if args.class_attention else 2]
        outputs = tuple(out_dir / f"{path.stem}_{kind}.png" for kind in kinds)
        problem = plan.claim_all(outputs, path) or _segment_one(segmenter, path, outputs, args)
        if problem is None:
            count.succeeded()
        else:
            count.failed(problem)
    return count.finish()


def _segment_one(segmenter: Segmenter, path: Path, outputs: tuple[Path, ...], args) -> str | None:
    """Writes the PNGs for ``path`` (labels, overlay, and class attention when asked); returns the
    one-line problem, or None."""
    try:
        result = segmenter([load_image(path, max_side=args.max_side)], class_attention=args.class_attention)[0]
        images = [result.label_image(), result.overlay(args.alpha, args.background, legend=not args.no_legend)]
        if args.class_attention:
            images.append(result.class_attention_image())
        for image, target in zip(images, outputs, strict=True):
            atomic_write(target, lambda file, image=image: image.save(file, format="PNG"))
    except (ImageLoadError, OutputError) as error:
        return str(error)
    print(f"{path} -> {', '.join(map(str, outputs))}")
    return None


def _background(name: str | None, class_names: list[str]) -> str | None:
    """The class to leave uncoloured: the one named, none for "none", else "background" when there is one."""
    if name is None:
        return default_background(class_names)
    if name.lower() == "none":
        return None
    if name not in class_names:
        raise ValueError(f"--background {name!r} is not a class of the checkpoint: {', '.join(class_names)}")
    return name

