"""Import another library's checkpoint as a self-contained suite checkpoint.

    mms2s import marian path/to/opus-mt-en-de en-de.ckpt [--overwrite]
    mms2s import bart path/to/bart-base bart.ckpt
    mms2s import whisper ~/.cache/whisper/tiny.pt tiny.ckpt
    mms2s import whisper openai-whisper:tiny tiny.ckpt

KIND names the importer (``IMPORTERS``); SOURCE is what it reads (for ``marian``: an HF Marian folder with
config.json, model.safetensors or pytorch_model.bin, source.spm, target.spm and vocab.json; for ``bart``:
an HF BartForConditionalGeneration folder with config.json, the weights, vocab.json and merges.txt; for
``whisper``: a whisper .pt file, an HF Whisper folder, or a model name that whisper's loader finds in its
cache or downloads). Nothing is
unpickled (safetensors, or torch.load with weights_only). OUT is written atomically and only when the
import succeeded; an existing OUT is replaced only with --overwrite. The result works with every suite
path: ``mms2s translate --checkpoint OUT``, ``Translator.from_checkpoint(OUT)``; ``mms2s transcribe
--checkpoint OUT``, ``Transcriber.from_checkpoint(OUT)``, ``mms2s fit`` with ``model.init_checkpoint: OUT``.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from multimodal_s2s.apps.common import fail
from multimodal_s2s.outputs import OutputError, OutputPlan

#: kind -> (module with ``import_checkpoint(source) -> (CheckpointHeader, model)``, what SOURCE is)
IMPORTERS: dict[str, tuple[str, str]] = {
    "bart": ("multimodal_s2s.interop.bart", "an HF BART (BartForConditionalGeneration) folder"),
    "marian": ("multimodal_s2s.interop.marian", "an HF Marian (OPUS-MT) folder"),
    "whisper": (
        "multimodal_s2s.interop.whisper",
        "an openai-whisper .pt file, an HF Whisper folder, or openai-whisper:NAME (e.g. openai-whisper:tiny)",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = "; ".join(f"{kind}: {source}" for kind, (_, source) in IMPORTERS.items())
    parser.add_argument("kind", choices=sorted(IMPORTERS), help=f"what SOURCE is ({kinds})")
    parser.add_argument("source", help="the checkpoint file or folder to import")
    parser.add_argument("out", help="the suite checkpoint to write (.ckpt)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")


def run(args: argparse.Namespace) -> int:
    from multimodal_s2s.interop.writing import ImportFailed, write_suite_checkpoint

    out = Path(args.out)
    try:
        problem = OutputPlan([args.source], args.overwrite).claim(out)
        if problem is not None:
            raise OutputError(problem)
        importer = importlib.import_module(IMPORTERS[args.kind][0])
        header, model = importer.import_checkpoint(args.source)
        write_suite_checkpoint(out, header, model)
    except (ImportFailed, OutputError) as error:
        return fail(str(error))
    size = header.model.vocab_size
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): {header.task.value}, vocabulary {size}")
    return 0
