"""``mms2s export`` of a text-out checkpoint (captioning, ASR, translation): an ONNX folder (``onnx_export.text``).

    mms2s export --checkpoint runs/.../best.ckpt --format onnx --out captioner_onnx/ [--quantize int8] [--overwrite]

The folder is checked against PyTorch before it is put in place; an existing --out is replaced only with
--overwrite, and never when the checkpoint lies inside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multimodal_s2s.apps.common import EXIT_FAILED, fail
from multimodal_s2s.checkpoint import Checkpoint, CheckpointError
from multimodal_s2s.errors import first_line
from multimodal_s2s.onnx_export.text import TOLERANCE, ExportError, export_text


def run_text(args: argparse.Namespace, checkpoint: Checkpoint) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        return fail(f"{out}: not written, it exists (use --overwrite to replace it)")
    if out.exists() and (not out.is_dir() or out.resolve() in Path(args.checkpoint).resolve().parents):
        return fail(f"{out}: not replaced, it is a file or holds the checkpoint {args.checkpoint}")
    try:
        report = export_text(checkpoint, out, args.opset, args.quantize)
    except CheckpointError as error:
        return fail(str(error))
    except ExportError as error:
        return fail(str(error), EXIT_FAILED)
    except Exception as error:  # the exporter and onnxruntime raise many kinds: report any in one line
        return fail(f"{args.checkpoint}: ONNX export failed ({first_line(error)})", EXIT_FAILED)
    files = ", ".join(f"{name} {size:.1f} MiB" for name, size in report.sizes.items())
    print(f"wrote {out}/: {files}")
    print(f"onnxruntime vs PyTorch: max |logit difference| {report.max_difference:.2e} (tolerance {TOLERANCE})")
    if report.quantized_difference is not None:
        print(f"int8: max |logit difference| {report.quantized_difference:.2e} (reported, not bounded)")
    return 0
