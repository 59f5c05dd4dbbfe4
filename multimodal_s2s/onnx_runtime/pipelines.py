"""Captioning and translation on an export folder with onnxruntime, numpy and pillow alone (no torch).

    >>> captioner = OnnxCaptioner("shapes_onnx")
    >>> captioner(["scene.png"])[0].text

Decoding defaults come from the manifest (the checkpoint's validation settings), as the PyTorch pipelines'
do; results carry the text, score, tokens, n-best and, when asked, the cross-attention. ASR on an export:
``pipelines.onnx_transcription`` (its voice activity detection, silero-vad, needs torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from multimodal_s2s.onnx_runtime.features import image_pixels
from multimodal_s2s.onnx_runtime.manifest import ExportFormatError
from multimodal_s2s.onnx_runtime.model import OnnxTextModel
from multimodal_s2s.onnx_runtime.search import SearchOptions, SearchResult, search
from multimodal_s2s.preprocessing.images import DEFAULT_MAX_SIDE, as_rgb_image
from multimodal_s2s.tokenizers import tokenizer_from_dict
from multimodal_s2s.tokenizers.special import PAD_ID, SPECIAL_TOKENS

DEFAULT_BATCH_SIZE = 16


@dataclass
class Alternative:
    """One of the beam's hypotheses: text and ranking score."""

    text: str
    score: float


@dataclass
class OnnxGeneration:
    """One input's text: as ``pipelines.TextGeneration`` (text, score, tokens, n_best, words), the attention
    (len(tokens), T_valid) over the memory rows when asked for, and a translation's ``source_tokens`` as text."""

    text: str
    score: float
    tokens: list[int]
    n_best: list[Alternative] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    attention: np.ndarray | None = None
    source_tokens: list[str] = field(default_factory=list)


class OnnxTextPipeline:
    """An export folder's model, tokenizer and decoding defaults (``task``: the task the subclass serves)."""

    task = ""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None):
        self.model = OnnxTextModel(folder, threads=threads)
        self.manifest = self.model.manifest
        if self.manifest.task != self.task:
            raise ExportFormatError(f"{folder}: an export of a {self.manifest.task} model, this needs {self.task}")
        self.tokenizer = tokenizer_from_dict(self.manifest.header["tokenizer"])

    def options(self, beam_size: int | None = None, n_best: int | None = None, max_length: int | None = None,
                return_attention: bool = False, no_repeat_ngram_size: int | None = None) -> SearchOptions:
        """As ``TextOutPipeline.options``: what is not given comes from the export's decoding defaults."""
        defaults = self.manifest.decoding()
        beam_size = defaults["beam_size"] if beam_size is None else beam_size
        ngram = defaults["no_repeat_ngram_size"] if no_repeat_ngram_size is None else no_repeat_ngram_size
        return SearchOptions(
            beam_size=beam_size, n_best=beam_size if n_best is None else n_best,
            max_length=defaults["max_length"] if max_length is None else max_length,
            length_penalty=defaults["length_penalty"], no_repeat_ngram_size=ngram or 0,
            end_at_max_length=defaults.get("end_at_max_length", False), return_attention=return_attention,
        )

    def generation(self, result: SearchResult) -> OnnxGeneration:
        decode = self.tokenizer.decode
        alternatives = [Alternative(decode(tokens), score) for tokens, score in result.n_best]
        words = self.token_texts(result.tokens, self.tokenizer)
        return OnnxGeneration(decode(result.tokens), result.score, result.tokens, alternatives, words, result.attention)

    @staticmethod
    def token_texts(tokens: list[int], tokenizer) -> list[str]:
        """Each token id as text on its own (special ids by name)."""
        return [tokenizer.decode([t]) if t >= len(SPECIAL_TOKENS) else SPECIAL_TOKENS[t] for t in tokens]


class OnnxCaptioner(OnnxTextPipeline):
    """Images in (paths, PIL images, arrays), captions out; ``Captioner``'s call on an export."""

    task = "captioning"

    def __call__(self, images: list, beam_size: int | None = None, n_best: int | None = None,
                 max_length: int | None = None, return_attention: bool = False,
                 batch_size: int = DEFAULT_BATCH_SIZE, max_side: int | None = DEFAULT_MAX_SIDE,
                 no_repeat_ngram_size: int | None = None) -> list[OnnxGeneration]:
        options = self.options(beam_size, n_best, max_length, return_attention, no_repeat_ngram_size)
        captions = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            pixels = np.stack([self.prepare(as_rgb_image(item, max_side)) for item in batch])  # (B, 3, H, W)
            captions += [self.generation(r) for r in search(self.model, self.model.encode(pixels), options)]
        return captions

    def prepare(self, image: Image.Image) -> np.ndarray:
        """RGB image -> (3, H, W) float32, as evaluation saw it."""
        image_options = self.manifest.header["preprocessing"]
        return image_pixels(image, image_options["image_size"], image_options["mean"], image_options["std"])


class OnnxTranslator(OnnxTextPipeline):
    """Lines in, translations out (a blank line gives an empty one); ``Translator``'s call on an export."""

    task = "translation"

    def __init__(self, folder: str | os.PathLike, threads: int | None = None):
        super().__init__(folder, threads)
        self.source_tokenizer = tokenizer_from_dict(self.manifest.header["source_tokenizer"])

    def __call__(self, lines: list[str], beam_size: int | None = None, n_best: int | None = None,
                 max_length: int | None = None, return_attention: bool = False, batch_size: int = 32,
                 no_repeat_ngram_size: int | None = None) -> list[OnnxGeneration]:
        if isinstance(lines, str):
            raise TypeError("OnnxTranslator takes a list of lines; wrap a single line in a list")
        options = self.options(beam_size, n_best, max_length, return_attention, no_repeat_ngram_size)
        encode = self.source_tokenizer.encode
        sources = {i: encode(line, add_special=True) for i, line in enumerate(lines) if line.strip()}
        order = sorted(sources, key=lambda i: len(sources[i]))
        translations = [OnnxGeneration("", 0.0, []) for _ in lines]
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            ids, lengths = pad_ids([sources[i] for i in indices])
            results = search(self.model, self.model.encode(ids, lengths), options)
            for index, result in zip(indices, results, strict=True):
                translations[index] = self.generation(result)
                translations[index].source_tokens = self.token_texts(sources[index], self.source_tokenizer)
        return translations


def pad_ids(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Id lists -> (B, L_max) int64 padded with PAD_ID, lengths (B,)."""
    lengths = np.array([len(ids) for ids in sequences], dtype=np.int64)
    padded = np.full((len(sequences), int(lengths.max())), PAD_ID, dtype=np.int64)
    for row, ids in enumerate(sequences):
        padded[row, : len(ids)] = ids
    return padded, lengths


def load_export(folder: str | Path, threads: int | None = None):
    """The pipeline of an export folder's task: OnnxCaptioner, OnnxTranslator, or (torch needed for the VAD)
    ``pipelines.onnx_transcription.OnnxTranscriber``."""
    from multimodal_s2s.onnx_runtime.manifest import read_manifest

    task = read_manifest(folder).task
    if task == "asr":
        from multimodal_s2s.pipelines.onnx_transcription import OnnxTranscriber

        return OnnxTranscriber(folder)
    return {"captioning": OnnxCaptioner, "translation": OnnxTranslator}[task](folder, threads)
