"""Translator: lines of text in, translations out, with attention over the source tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from multimodal_s2s.checkpoint import Task
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.pipelines.base import batches
from multimodal_s2s.pipelines.text import TextGeneration, TextOutPipeline, attention_of
from multimodal_s2s.preprocessing.tokens import encode_source, pad_token_ids
from multimodal_s2s.types import SPECIAL_TOKENS

DEFAULT_BATCH_SIZE = 32


@dataclass
class Translation(TextGeneration):
    """A translation (see TextGeneration); with attention asked for, ``attention`` (len(tokens), L_src)
    over ``source_tokens`` (BOS ... EOS as text); None when the decoder does not attend ("rnn")."""

    source_tokens: list[str] = field(default_factory=list)
    attention: Tensor | None = None


class Translator(TextOutPipeline):
    """A translation checkpoint ready for inference.

    >>> translator = Translator.from_checkpoint("runs/translation/dates/version_0/checkpoints/last.ckpt")
    >>> translator(["the third of March, 1999"])[0].text
    '1999-03-03'
    """

    task = Task.TRANSLATION

    def __call__(
        self,
        lines: list[str],
        beam_size: int | None = None,
        n_best: int | None = None,
        max_length: int | None = None,
        return_attention: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        no_repeat_ngram_size: int | None = None,
    ) -> list[Translation]:
        """One translation per line, in order; a blank line gives an empty translation. Lines are
        decoded in batches of similar length (decoding defaults: the checkpoint's validation settings)."""
        if isinstance(lines, str):
            raise TypeError("Translator takes a list of lines; wrap a single line in a list")
        options = self.options(beam_size, n_best, max_length, return_attention, no_repeat_ngram_size)
        sources = {i: encode_source(self.header.source_tokenizer, line) for i, line in enumerate(lines) if line.strip()}
        order = sorted(sources, key=lambda i: len(sources[i]))
        translations = [Translation(text="", score=0.0, tokens=[]) for _ in lines]
        for indices in batches(order, batch_size):
            batch = self._translate([sources[i] for i in indices], options)
            for index, translation in zip(indices, batch, strict=True):
                translations[index] = translation
        return translations

    def _translate(self, sources: list[list[int]], options: DecodingOptions) -> list[Translation]:
        inputs = pad_token_ids(sources).to(self.device)  # (B, L)
        lengths = torch.tensor([len(source) for source in sources], device=self.device)  # (B,)
        results = decode(self.model, inputs, options, lengths)
        return [
            Translation(**vars(self.generation(result)), source_tokens=self._source_texts(source),
                        attention=attention_of(result))
            for source, result in zip(sources, results, strict=True)
        ]

    def _source_texts(self, ids: list[int]) -> list[str]:
        decode_one = self.header.source_tokenizer.decode
        return [SPECIAL_TOKENS[t] if t < len(SPECIAL_TOKENS) else decode_one([t]) for t in ids]
