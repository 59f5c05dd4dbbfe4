"""Translate lines of text with a translation checkpoint.

    mms2s translate --checkpoint runs/translation/.../best.ckpt input.txt > output.txt
    echo "the 21st of March, 1999" | mms2s translate --checkpoint CKPT --beam-size 4
    echo "March 21st 1999" | mms2s translate --checkpoint CKPT --attention-plot attention.png

Reads FILE (plain or .gz; standard input when no FILE is given) and writes one translation per input
line to standard output, in input order; blank lines stay blank. Lines are translated in batches of
similar length (--batch-size) with beam search (--beam-size; default: the checkpoint's validation
setting). --attention-plot OUT.png takes a single line and also writes a heatmap of the decoder's
attention (source tokens across, output tokens down).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from multimodal_s2s.apps.attention_plot import save_attention_plot
from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.data.text_batches import pad_token_ids
from multimodal_s2s.data.translation import TASK, encode_source, read_lines, split_lines
from multimodal_s2s.decoding import DecodingOptions, DecodingOptionsError
from multimodal_s2s.inference import Generation, Seq2SeqPipeline, load_as
from multimodal_s2s.types import SPECIAL_TOKENS, Modality

DEFAULT_BATCH_SIZE = 32
EXIT_BAD_SETUP = 2


@dataclass
class AttentionMap:
    """One sentence's translation with its attention weights (L_out, L_src) and the token labels."""

    translation: str
    weights: torch.Tensor
    source_tokens: list[str]
    output_tokens: list[str]


class Translator:
    """A translation checkpoint ready for inference: ``translate(lines)`` and ``attention(line)``."""

    def __init__(self, pipeline: Seq2SeqPipeline):
        if pipeline.task != TASK or pipeline.source_tokenizer is None:
            raise CheckpointError(f"a {pipeline.task!r} checkpoint, but mms2s translate needs a {TASK!r} one")
        self.pipeline = pipeline
        self.source_tokenizer = pipeline.source_tokenizer

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Translator:
        """Read a checkpoint; CheckpointError (one line, naming the file) when it is not a translation one."""
        return load_as(cls, path, Modality.TEXT, device)

    def translate(
        self, lines: list[str], options: DecodingOptions | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[str]:
        """One translation per line, in order (blank lines give ""); batches hold lines of similar length."""
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        sources = {i: encode_source(self.source_tokenizer, line) for i, line in enumerate(lines) if line.strip()}
        order = sorted(sources, key=lambda i: len(sources[i]))
        translations = [""] * len(lines)
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch = [sources[i] for i in indices]
            for index, generation in zip(indices, self._generate(batch, options), strict=True):
                translations[index] = generation.text
        return translations

    def attention(self, line: str, options: DecodingOptions | None = None) -> AttentionMap | None:
        """Translate one line and return the attention of each output token over the source tokens,
        or None when the decoder does not attend (the "rnn" decoder's fixed context vector)."""
        options = replace(options or self.pipeline.options(), return_attention=True)
        source = encode_source(self.source_tokenizer, line)
        generation = self._generate([source], options)[0]
        if generation.attention is None:
            return None
        source_tokens = [self._source_token_text(i) for i in source]
        output_tokens = self.pipeline.token_texts(generation.tokens)
        return AttentionMap(generation.text, generation.attention, source_tokens, output_tokens)

    def _generate(self, sources: list[list[int]], options: DecodingOptions | None) -> list[Generation]:
        """Source id lists -> one generation each, in order."""
        inputs = pad_token_ids(sources)  # (B, L)
        lengths = torch.tensor([len(source) for source in sources])  # (B,)
        return self.pipeline.generate(inputs, lengths.to(self.pipeline.device), options)

    def _source_token_text(self, token: int) -> str:
        return SPECIAL_TOKENS[token] if token < len(SPECIAL_TOKENS) else self.source_tokenizer.decode([token])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="text file, one sentence a line (plain or .gz); default: stdin")
    parser.add_argument("--checkpoint", required=True, help="a translation checkpoint (.ckpt)")
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (1 = greedy); default: checkpoint's")
    parser.add_argument("--max-length", type=int, default=None, help="most output tokens; default: checkpoint's")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="lines translated together")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument(
        "--attention-plot", metavar="OUT.png", default=None, help="for a single line: write its attention heatmap"
    )


def run(args: argparse.Namespace) -> int:
    try:
        translator = Translator.load(args.checkpoint, args.device)
        options = translator.pipeline.options(beam_size=args.beam_size, max_length=args.max_length)
        lines = read_lines(args.file) if args.file else split_lines(sys.stdin.read())
        if args.attention_plot is not None:
            return _plot(translator, lines, options, args.attention_plot)
        translations = translator.translate(lines, options, args.batch_size)
    except (CheckpointError, DecodingOptionsError, ValueError, FileNotFoundError, ModuleNotFoundError) as error:
        print(f"mms2s translate: {error}", file=sys.stderr)
        return EXIT_BAD_SETUP
    sys.stdout.write("".join(f"{translation}\n" for translation in translations))
    return 0


def _plot(translator: Translator, lines: list[str], options: DecodingOptions, path: str) -> int:
    """Translate the one line of ``lines``, print it and write its attention heatmap to ``path``."""
    sentences = [line for line in lines if line.strip()]
    if len(sentences) != 1:
        raise ValueError(f"--attention-plot takes exactly one sentence, got {len(sentences)} non-blank lines")
    attention = translator.attention(sentences[0], options)
    if attention is None:
        decoder = translator.pipeline.model.config.decoder
        raise ValueError(f"the checkpoint's decoder {decoder!r} has no attention to plot (it reads a fixed context)")
    print(attention.translation)
    save_attention_plot(
        attention.weights, attention.source_tokens, attention.output_tokens, path,
        title=f"{sentences[0]} \u2192 {attention.translation}",
    )  # fmt: skip
    print(f"attention plot: {path}", file=sys.stderr)
    return 0
