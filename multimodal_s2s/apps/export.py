"""Export a segmentation checkpoint to ONNX, and check the result in onnxruntime.

    mms2s export --checkpoint runs/.../best.ckpt --format onnx --out segnet.onnx

The graph takes ``images`` float (B, 3, H, W), normalized with the mean and std stored in the
file's metadata, and returns ``logits`` (B, num_classes, H, W); batch, height and width are
dynamic. SegNet's max unpooling is a scatter in this suite (``layers.pooling.max_unpool2d``), so
SegNet exports although ``F.max_unpool2d`` has no ONNX export. Metadata (``mms2s.*`` keys): class
names, palette, preprocessing, model config, all JSON. After writing, the file is run in
onnxruntime (when installed) at the training size and at another size, and compared with PyTorch.
Text-out (seq2seq) checkpoints are not exported yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from multimodal_s2s.checkpoint import CHECKPOINT_KEY, CheckpointError, model_from_checkpoint, read_checkpoint

TASK = "segmentation"
FORMATS = ("onnx",)
DEFAULT_OPSET = 18
VERIFY_BATCH = 2
#: The second size checked, as (extra rows, extra columns) over the export size, in multiples of this.
SIZE_STEP = 32
#: Largest |ONNX - PyTorch| logit difference accepted by the check.
TOLERANCE = 1e-3
EXIT_FAILED, EXIT_BAD_SETUP = 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a segmentation checkpoint (.ckpt)")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="export format (onnx)")
    parser.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        return _fail(f"{out}: --out must be a file name, and this is a folder")
    if out.exists() and out.resolve() == Path(args.checkpoint).resolve():
        return _fail(f"{out}: --out is the checkpoint itself")
    try:
        checkpoint = read_checkpoint(args.checkpoint, TASK)
        model = model_from_checkpoint(checkpoint)
    except (CheckpointError, ValueError, RuntimeError) as error:
        return _fail(f"{error} (export supports segmentation checkpoints)")
    meta = checkpoint[CHECKPOINT_KEY]
    height, width = meta["preprocess"]["image_size"]
    example = torch.randn(VERIFY_BATCH, 3, height, width)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_onnx(model, example, out, metadata(meta), args.opset)
    except Exception as error:  # the exporter raises many kinds (torch.export, onnxscript): report any in one line
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return _fail(f"{args.checkpoint}: ONNX export failed ({first_line})", EXIT_FAILED)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): images (B, 3, H, W) -> logits (B, C, H, W)")
    if args.no_verify:
        return 0
    try:
        differences = verify_onnx(model, out, [example, torch.randn(1, 3, height + SIZE_STEP, width + SIZE_STEP)])
    except ImportError:
        print("onnxruntime is not installed: the export was not checked")
        return 0
    for size, difference in differences.items():
        print(f"onnxruntime vs PyTorch at {size}: max |difference| {difference:.2e}")
    if max(differences.values()) > TOLERANCE:
        return _fail(f"{out}: onnxruntime outputs differ from PyTorch by more than {TOLERANCE}", EXIT_FAILED)
    return 0


def metadata(meta: dict[str, Any]) -> dict[str, str]:
    """The checkpoint's class names, palette, preprocessing and model config as ONNX metadata."""
    keys = ("class_names", "palette", "preprocess", "model", "ignore_index")
    return {"mms2s.task": meta["task"], **{f"mms2s.{key}": json.dumps(meta[key]) for key in keys}}


def export_onnx(model: nn.Module, example: torch.Tensor, out: Path, properties: dict[str, str], opset: int) -> None:
    """torch.export-based ONNX export, batch/height/width dynamic, weights inside the one file."""
    dynamic = torch.export.Dim.AUTO
    program = torch.onnx.export(
        model.eval(), (example,), dynamo=True, input_names=["images"], output_names=["logits"],
        dynamic_shapes={"images": {0: dynamic, 2: dynamic, 3: dynamic}}, opset_version=opset,
        external_data=False, verbose=False,
    )  # fmt: skip
    program.model.metadata_props.update(properties)
    program.save(str(out), external_data=False)


def verify_onnx(model: nn.Module, path: Path, inputs: list[torch.Tensor]) -> dict[tuple[int, ...], float]:
    """Max |onnxruntime - PyTorch| logit difference per input shape. Raises ImportError without onnxruntime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    differences = {}
    for images in inputs:
        (onnx_logits,) = session.run(["logits"], {"images": images.numpy()})
        with torch.no_grad():
            torch_logits = model(images).numpy()
        differences[tuple(images.shape)] = float(np.abs(onnx_logits - torch_logits).max())
    return differences


def _fail(message: str, code: int = EXIT_BAD_SETUP) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
