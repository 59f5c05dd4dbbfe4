"""Translate lines of text with a translation checkpoint.

    mms2s translate --checkpoint runs/translation/.../best.ckpt input.txt > output.txt
    echo "the 21st of March, 1999" | mms2s translate --checkpoint CKPT --beam-size 4
    echo "March 21st 1999" | mms2s translate --checkpoint CKPT --attention-plot attention.png

Reads FILE (plain or .gz; standard input when no FILE is given) and writes one translation per input
line to standard output, in input order; blank lines stay blank. Lines are translated in batches of
similar length (--batch-size) with beam search (--beam-size; default: the checkpoint's validation
setting), through ``multimodal_s2s.Translator``. --attention-plot OUT.png takes a single line and also
writes a heatmap of the decoder's attention (source tokens across, output tokens down); it never
replaces the input file, nor an existing file unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import sys

from multimodal_s2s.apps.attention_plot import save_attention_plot
from multimodal_s2s.apps.common import add_batch_size_argument, add_checkpoint_arguments, fail
from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.decoding import DecodingOptionsError
from multimodal_s2s.onnx_runtime.manifest import is_export
from multimodal_s2s.onnx_runtime.pipelines import OnnxTranslator
from multimodal_s2s.outputs import OutputError, OutputPlan
from multimodal_s2s.pipelines import Translator
from multimodal_s2s.pipelines.translation import DEFAULT_BATCH_SIZE
from multimodal_s2s.preprocessing.files import read_lines, split_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="text file, one sentence a line (plain or .gz); default: stdin")
    add_checkpoint_arguments(
        parser, "a translation checkpoint (.ckpt), Hub folder, Hub repository id or ONNX export folder"
    )
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (1 = greedy); default: checkpoint's")
    parser.add_argument("--max-length", type=int, default=None, help="most output tokens; default: checkpoint's")
    parser.add_argument("--no-repeat-ngram", type=int, default=None, metavar="N",
                        help="ban repeating any N-gram of tokens (0: off); default: checkpoint's")
    add_batch_size_argument(parser, DEFAULT_BATCH_SIZE, "lines")
    parser.add_argument(
        "--attention-plot", metavar="OUT.png", default=None, help="for a single line: write its attention heatmap"
    )
    parser.add_argument("--overwrite", action="store_true", help="let --attention-plot replace an existing file")


def run(args: argparse.Namespace) -> int:
    try:
        translator = _translator(args)
        options = {"beam_size": args.beam_size, "n_best": 1, "max_length": args.max_length,
                   "no_repeat_ngram_size": args.no_repeat_ngram}
        translator.options(**options)  # checks the options before any input is read
        if args.attention_plot is not None:
            problem = OutputPlan([args.file] if args.file else [], args.overwrite).claim(args.attention_plot)
            if problem:
                raise OutputError(problem)
        lines = read_lines(args.file) if args.file else split_lines(sys.stdin.read())
        if args.attention_plot is not None:
            return _plot(translator, lines, options, args.attention_plot)
        translations = translator(lines, batch_size=args.batch_size, **options)
    except (CheckpointError, DecodingOptionsError, ValueError, FileNotFoundError, ModuleNotFoundError) as error:
        return fail(str(error))
    sys.stdout.write("".join(f"{translation.text}\n" for translation in translations))
    return 0


def _translator(args: argparse.Namespace):
    """The Translator of a checkpoint, or the OnnxTranslator of an export folder."""
    if is_export(args.checkpoint):
        return OnnxTranslator(args.checkpoint)
    return Translator.from_checkpoint(args.checkpoint, args.device)


def _plot(translator: Translator, lines: list[str], options: dict, path: str) -> int:
    """Translate the one line of ``lines``, print it and write its attention heatmap to ``path``."""
    sentences = [line for line in lines if line.strip()]
    if len(sentences) != 1:
        raise ValueError(f"--attention-plot takes exactly one sentence, got {len(sentences)} non-blank lines")
    translation = translator(sentences, return_attention=True, **options)[0]
    if translation.attention is None:
        decoder = translator.header.model.decoder
        raise ValueError(f"the checkpoint's decoder {decoder!r} has no attention to plot (it reads a fixed context)")
    print(translation.text)
    save_attention_plot(
        translation.attention, translation.source_tokens, translation.words, path,
        title=f"{sentences[0]} \u2192 {translation.text}",
    )
    print(f"attention plot: {path}", file=sys.stderr)
    return 0
