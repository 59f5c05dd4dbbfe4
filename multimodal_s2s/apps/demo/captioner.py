"""The demo's one door to the model: ``DemoCaptioner`` turns an image into the page's JSON answer and
gives the model's card (``Pipeline.model_card``, with the demo's decoding).

It is the only place in the demo that calls the captioning code (``pipelines.Captioner``): moving to
another pipeline class changes ``DemoCaptioner.load``, ``DemoCaptioner.caption`` and
``DemoCaptioner.model_card``, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from multimodal_s2s.apps.demo.heatmaps import display_copy, png_data_url
from multimodal_s2s.heatmaps import attention_scale, heatmaps
from multimodal_s2s.outputs import json_score
from multimodal_s2s.pipelines import Captioner, ModelCard
from multimodal_s2s.pipelines.card import decoding_text

DEFAULT_N_BEST = 3


@dataclass
class Captioned:
    """One image's caption as the page shows it.

    Attributes:
        text, score: the best caption and its ranking score (length-penalized log-probability).
        alternatives: (text, score) of the beam's best captions, best first.
        words: each generated token as text.
        maps: (len(words), h, w) each token's attention over the encoder's grid, or None.
    """

    text: str
    score: float
    alternatives: list[tuple[str, float]]
    words: list[str]
    maps: Tensor | None


class DemoCaptioner:
    """A captioning checkpoint with the demo's decoding options: images in, the page's answers out."""

    def __init__(self, captioner: Captioner, beam_size: int, n_best: int):
        captioner.options(beam_size, n_best)  # DecodingOptionsError (a ValueError) for impossible values
        self.captioner, self.beam_size, self.n_best = captioner, beam_size, n_best

    @classmethod
    def load(
        cls, path: str | Path, device: str = "cpu", beam_size: int | None = None, n_best: int = DEFAULT_N_BEST
    ) -> DemoCaptioner:
        """Raises CheckpointError (one line naming the file) or ValueError (a bad device or option)."""
        captioner = Captioner.from_checkpoint(path, device)
        beam = captioner.options(beam_size).beam_size
        return cls(captioner, beam, min(n_best, beam))

    @property
    def decoding(self) -> str:
        ngram = self.captioner.options(self.beam_size).no_repeat_ngram_size
        return decoding_text(self.beam_size, self.n_best, ngram)

    def model_card(self) -> ModelCard:
        """The checkpoint's model card, with the demo's decoding."""
        return replace(self.captioner.model_card(), decoding=self.decoding)

    def caption(self, image: Image.Image) -> Captioned:
        """Caption one RGB image."""
        caption = self.captioner([image], self.beam_size, self.n_best, return_attention=True)[0]
        return Captioned(
            text=caption.text,
            score=caption.score,
            alternatives=[(hypothesis.text, hypothesis.score) for hypothesis in caption.n_best],
            words=caption.words,
            maps=caption.attention,
        )

    def describe(self, image: Image.Image) -> dict[str, Any]:
        """The page's JSON answer for one RGB image."""
        return page_answer(image, self.caption(image))


def page_answer(image: Image.Image, captioned: Captioned) -> dict[str, Any]:
    """The JSON the page shows: caption, alternatives, the picture and one heatmap per word (over the
    picture in greyscale, on one scale: ``heatmap_scale.top`` is the weight at the top of the colour bar,
    ``heatmap_scale.uniform`` the weight of each cell if attention were spread evenly)."""
    picture = display_copy(image)
    answer: dict[str, Any] = {
        "caption": captioned.text,
        "score": json_score(captioned.score),
        "alternatives": [{"caption": text, "score": json_score(score)} for text, score in captioned.alternatives],
        "image": png_data_url(picture),
        "words": [],
        "heatmap_scale": None,
        "attention_note": "This model's attention does not map onto the image.",
    }
    maps = captioned.maps
    if maps is not None:
        top = attention_scale(maps)
        pictures = heatmaps(picture, maps, top)
        answer["words"] = [
            {"word": word, "heatmap": png_data_url(heatmap)}
            for word, heatmap in zip(captioned.words, pictures, strict=True)
        ]
        answer["heatmap_scale"] = {"top": json_score(top), "uniform": json_score(1.0 / maps[0].numel())}
        answer["attention_note"] = None
    return answer
