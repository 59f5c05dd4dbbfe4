"""Caption images with a captioning checkpoint.

    mms2s caption photo.jpg more_photos/ --checkpoint runs/.../best.ckpt [--beam-size 5] [--json]

Prints ``path<TAB>caption`` per image, in the order given (folders: their images, sorted); with
``--json``, one JSON object a line: ``{"path", "caption", "score", "n_best": [{"caption", "score"}, ...]}``
(score: the length-penalized log-probability, higher is better). Images of any mode (grayscale,
RGBA, 16-bit, CMYK, palette) are converted to RGB, very large ones shrunk while loading. A file
that cannot be captioned gets one ``error: PATH: reason`` line on stderr and the others are still
captioned; the exit code is then 1 (2 when the checkpoint itself cannot be used).

--checkpoint may be an ONNX export folder (``mms2s export``): the images are then captioned with onnxruntime,
numpy and pillow, and torch is never imported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from multimodal_s2s.apps.common import FileCount, add_batch_size_argument, add_checkpoint_arguments, fail
from multimodal_s2s.onnx_runtime.manifest import is_export
from multimodal_s2s.onnx_runtime.pipelines import DEFAULT_BATCH_SIZE
from multimodal_s2s.outputs import json_score
from multimodal_s2s.preprocessing.files import IMAGE_SUFFIXES, expand_inputs
from multimodal_s2s.preprocessing.images import DEFAULT_MAX_SIDE, ImageLoadError, load_image

if TYPE_CHECKING:
    from multimodal_s2s.pipelines import Caption

#: ``mms2s`` leaves torch's threads to ``_captioner``: the ONNX path never imports torch.
CONFIGURES_THREADS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files, or folders whose images to caption")
    add_checkpoint_arguments(
        parser, "a captioning checkpoint (.ckpt), Hub folder, Hub repository id or ONNX export folder"
    )
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (default: the checkpoint's)")
    parser.add_argument("--n-best", type=int, default=None, help="alternatives in --json output (default: beam size)")
    parser.add_argument(
        "--max-length", type=int, default=None, help="most tokens per caption (default: the checkpoint's)"
    )
    parser.add_argument("--no-repeat-ngram", type=int, default=None, metavar="N",
                        help="ban repeating any N-gram of words (0: off; default: the checkpoint's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, with score and n-best list")
    add_batch_size_argument(parser, DEFAULT_BATCH_SIZE, "images")
    parser.add_argument(
        "--max-side", type=int, default=DEFAULT_MAX_SIDE, help="larger images are downscaled to this longest side"
    )


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        return fail(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        captioner = _captioner(args)
        options = {"beam_size": args.beam_size, "n_best": args.n_best, "max_length": args.max_length,
                   "no_repeat_ngram_size": args.no_repeat_ngram}
        captioner.options(**options)  # checks the options before any image is read
    except ValueError as error:  # CheckpointError, ExportFormatError, DecodingOptionsError
        return fail(str(error))
    paths, problems = expand_inputs(args.images, IMAGE_SUFFIXES, "images")
    count = FileCount("captioned", problems)
    for start in range(0, len(paths), args.batch_size):
        batch = paths[start : start + args.batch_size]
        images, loaded = [], []
        for path in batch:
            try:
                images.append(load_image(path, max_side=args.max_side))
                loaded.append(path)
            except ImageLoadError as error:
                count.failed(str(error))
        if images:
            for path, caption in zip(loaded, captioner(images, batch_size=args.batch_size, **options), strict=True):
                print(_format(path, caption, args.json), flush=True)
            count.succeeded(len(images))
    return count.finish()


def _captioner(args: argparse.Namespace):
    """The Captioner of a checkpoint, or the OnnxCaptioner of an export folder (torch-free)."""
    if is_export(args.checkpoint):
        from multimodal_s2s.onnx_runtime.pipelines import OnnxCaptioner

        return OnnxCaptioner(args.checkpoint)
    from multimodal_s2s.pipelines import Captioner
    from multimodal_s2s.threads import configure_threads

    configure_threads()
    return Captioner.from_checkpoint(args.checkpoint, args.device)


def _format(path: Path, caption: Caption, as_json: bool) -> str:
    if not as_json:
        return f"{path}\t{caption.text}"
    record = {
        "path": str(path),
        "caption": caption.text,
        "score": json_score(caption.score),
        "n_best": [{"caption": h.text, "score": json_score(h.score)} for h in caption.n_best],
    }
    return json.dumps(record, ensure_ascii=False)

