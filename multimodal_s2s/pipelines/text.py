"""Text-out pipelines' shared part: decoding options from the checkpoint's defaults, typed generations."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from multimodal_s2s.decoding import DecodingOptions, DecodingResult
from multimodal_s2s.pipelines.base import Pipeline
from multimodal_s2s.types import SPECIAL_TOKENS


@dataclass
class Hypothesis:
    """One of the beam's hypotheses: its text and ranking score (length-penalized log-probability)."""

    text: str
    score: float


@dataclass
class TextGeneration:
    """One input's text output.

    Attributes:
        text: the best hypothesis, detokenized.
        score: its ranking score (length-penalized log-probability; higher is better).
        tokens: its token ids (no BOS / EOS).
        n_best: the best hypotheses, best first (the first is ``text``).
        words: each token of ``tokens`` as text (words, characters or BPE pieces), to label attention.
    """

    text: str
    score: float
    tokens: list[int]
    n_best: list[Hypothesis] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


class TextOutPipeline(Pipeline):
    """A text-out model: its tokenizer, its decoding defaults and the typed results."""

    def options(
        self,
        beam_size: int | None = None,
        n_best: int | None = None,
        max_length: int | None = None,
        return_attention: bool = False,
        no_repeat_ngram_size: int | None = None,
    ) -> DecodingOptions:
        """Decoding options; what is not given comes from the checkpoint's validation settings
        (``n_best`` defaults to the beam size; ``no_repeat_ngram_size`` 0 lifts the ban on repeated
        n-grams). DecodingOptionsError for impossible values."""
        defaults = self.header.decoding
        beam_size = defaults.beam_size if beam_size is None else beam_size
        ngram = defaults.no_repeat_ngram_size if no_repeat_ngram_size is None else no_repeat_ngram_size
        return DecodingOptions(
            beam_size=beam_size,
            n_best=beam_size if n_best is None else n_best,
            max_length=defaults.max_length if max_length is None else max_length,
            length_penalty=defaults.length_penalty,
            no_repeat_ngram_size=ngram,
            end_at_max_length=defaults.end_at_max_length,
            return_attention=return_attention,
            **defaults.rules(),
        )

    def token_texts(self, tokens: list[int]) -> list[str]:
        """Each token id as text on its own (special ids by name)."""
        tokenizer = self.header.tokenizer
        return [tokenizer.decode([t]) if t >= len(SPECIAL_TOKENS) else SPECIAL_TOKENS[t] for t in tokens]

    def generation(self, result: DecodingResult) -> TextGeneration:
        """A decoding result as text."""
        decode = self.header.tokenizer.decode
        return TextGeneration(
            text=decode(result.tokens),
            score=float(result.score),
            tokens=list(result.tokens),
            n_best=[Hypothesis(decode(tokens), float(score)) for tokens, score in result.n_best],
            words=self.token_texts(list(result.tokens)),
        )

    def to_device(self, tensor: Tensor | None) -> Tensor | None:
        return None if tensor is None else tensor.to(self.device)


def attention_of(result: DecodingResult) -> Tensor | None:
    """(L_out, T) cross-attention of the best hypothesis on the CPU, or None."""
    return None if result.attention is None else torch.as_tensor(result.attention).float().cpu()
