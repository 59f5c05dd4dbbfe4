"""Export a segmentation checkpoint to ONNX, and check the result in onnxruntime.

    mms2s export --checkpoint runs/.../best.ckpt --format onnx --out segnet.onnx [--overwrite]

The graph takes ``images`` float (B, 3, H, W), normalized with the mean and std stored in the
file's metadata, and returns ``logits`` (B, num_classes, H, W); batch, height and width are
dynamic. SegNet's max unpooling is a scatter in this suite (``layers.pooling.max_unpool2d``), so
SegNet exports although ``F.max_unpool2d`` has no ONNX export. Metadata: the checkpoint's header,
one ``mms2s.<section>`` key per section, JSON (``mms2s.labels``: class names, palette, ignore index;
``mms2s.preprocessing``: image size, mean, std; ``mms2s.model``: the model config; ...). After
writing, the file is run in onnxruntime (when installed) at the training size and at another size,
and compared with PyTorch.
A text-out checkpoint (captioning, ASR, translation) is exported to a folder instead (``apps.export_text``).
An existing --out file is replaced only with --overwrite; the file is written atomically.

    mms2s export --checkpoint runs/.../best.ckpt --format hub --out my-model/ [--overwrite]

writes a checkpoint of any task as a Hub folder (config.json, model.safetensors, tokenizer files, a
README.md model card: ``Pipeline.save_pretrained``), ready for ``hf upload USER/NAME my-model/`` and for
``--checkpoint my-model/`` of every app; a folder with files is written into only with --overwrite.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from multimodal_s2s.apps.common import EXIT_FAILED, add_checkpoint_arguments, fail
from multimodal_s2s.checkpoint import Checkpoint, CheckpointError, CheckpointHeader, Task, read_checkpoint
from multimodal_s2s.errors import first_line
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.onnx_export.text import QUANTIZATIONS
from multimodal_s2s.outputs import OutputError, OutputPlan, atomic_write
from multimodal_s2s.pipelines import load_pipeline

FORMATS = ("onnx", "hub")
DEFAULT_OPSET = 18
VERIFY_BATCH = 2
#: The second size checked, as (extra rows, extra columns) over the export size, in multiples of this.
SIZE_STEP = 32
#: Largest |ONNX - PyTorch| logit difference accepted by the check.
TOLERANCE = 1e-3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(parser, "a checkpoint (.ckpt): onnx: segmentation -> a file, text-out -> a folder",
                             device=False)
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="export format (onnx, or hub: a Hub folder)")
    parser.add_argument("--out", required=True,
                        help="the file (onnx, segmentation: x.onnx) or folder (onnx text-out; hub) to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--no-verify", action="store_true",
                        help="segmentation: skip the onnxruntime comparison (a text-out export is always checked)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default=None,
                        help="text-out exports: dynamic int8 weights (speed and quality change reported, not promised)")


def run(args: argparse.Namespace) -> int:
    if args.format == "hub":
        if args.quantize is not None:
            return fail(f"{args.checkpoint}: --quantize applies to ONNX exports, not to --format hub")
        return export_hub(args)
    text = _text_checkpoint(args.checkpoint)
    if text is not None:
        from multimodal_s2s.apps.export_text import run_text

        return run_text(args, text)
    if args.quantize is not None:
        return fail(f"{args.checkpoint}: --quantize applies to text-out exports (captioning, ASR, translation)")
    out = Path(args.out)
    problem = OutputPlan([args.checkpoint], args.overwrite).claim(out)
    if problem is not None:
        return fail(problem)
    try:
        checkpoint = read_checkpoint(args.checkpoint, Task.SEGMENTATION)
        model = model_from_checkpoint(checkpoint)
    except CheckpointError as error:
        return fail(f"{error} (export supports segmentation checkpoints)")
    height, width = checkpoint.header.preprocessing.image_size
    example = torch.randn(VERIFY_BATCH, 3, height, width)
    try:
        export_onnx(model, example, out, metadata(checkpoint.header), args.opset)
    except OutputError as error:
        return fail(str(error), EXIT_FAILED)
    except Exception as error:  # the exporter raises many kinds (torch.export, onnxscript): report any in one line
        return fail(f"{args.checkpoint}: ONNX export failed ({first_line(error)})", EXIT_FAILED)
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
        return fail(f"{out}: onnxruntime outputs differ from PyTorch by more than {TOLERANCE}", EXIT_FAILED)
    return 0


def export_hub(args: argparse.Namespace) -> int:
    """--format hub: the checkpoint (any task) as a Hub folder at --out."""
    try:
        pipeline = load_pipeline(args.checkpoint, device="cpu")
        folder = pipeline.save_pretrained(args.out, overwrite=args.overwrite)
    except (CheckpointError, OutputError) as error:  # the checkpoint, or the folder, cannot be used
        return fail(str(error))
    files = ", ".join(sorted(path.name for path in folder.iterdir()))
    print(f"wrote the {pipeline.task.value} Hub folder {folder} ({files}): --checkpoint {folder} loads it")
    return 0


def _text_checkpoint(path: str) -> Checkpoint | None:
    """The checkpoint at ``path`` when it is readable and of a text-out task, else None (the segmentation
    path reports any problem)."""
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError:
        return None
    return None if checkpoint.header.task == Task.SEGMENTATION else checkpoint


def metadata(header: CheckpointHeader) -> dict[str, str]:
    """The checkpoint's header (task, model config, labels, preprocessing...) as ONNX metadata, JSON values."""
    return {f"mms2s.{key}": json.dumps(value) for key, value in header.to_dict().items() if key != "tokenizer"}


def export_onnx(model: nn.Module, example: torch.Tensor, out: Path, properties: dict[str, str], opset: int) -> None:
    """torch.export-based ONNX export, batch/height/width dynamic, weights inside the one file (written atomically)."""
    dynamic = torch.export.Dim.AUTO
    program = torch.onnx.export(
        model.eval(), (example,), dynamo=True, input_names=["images"], output_names=["logits"],
        dynamic_shapes={"images": {0: dynamic, 2: dynamic, 3: dynamic}}, opset_version=opset,
        external_data=False, verbose=False,
    )
    program.model.metadata_props.update(properties)
    proto = program.model_proto
    atomic_write(out, lambda file: file.write(proto.SerializeToString()))


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

