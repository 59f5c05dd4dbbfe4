"""The demo's one door to the model: ``DemoCaptioner`` turns an image into the page's JSON answer, and
``read_model_card`` reads what the checkpoint says about the model.

They are the only places in the demo that call the captioning code (``pipelines.Captioner`` and the
checkpoint header): moving to another pipeline class changes ``DemoCaptioner.load``,
``DemoCaptioner.caption`` and ``read_model_card``, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from multimodal_s2s.apps.demo.heatmaps import display_copy, png_data_url
from multimodal_s2s.checkpoint import CheckpointError, CheckpointHeader, Task, header_of, load_checkpoint_file
from multimodal_s2s.heatmaps import attention_scale, heatmaps
from multimodal_s2s.pipelines import Captioner, json_score

DEFAULT_N_BEST = 3
NOT_RECORDED = "not recorded"
#: What each data format of ``CaptioningDataModule`` holds, for the model card.
DATA_FORMATS = {
    "shapes": "procedural scenes of one or two coloured shapes (the suite's shapes generator)",
    "flickr8k": "Flickr8k photos",
    "coco": "COCO photos",
    "jsonl": "images listed in a JSON-lines caption file",
}
#: Arguments of the encoder / decoder named on the model card, when the checkpoint has them.
ENCODER_KEYS = ("backbone",)
DECODER_KEYS = ("num_layers", "d_model", "hidden_size")
#: A vocabulary this small is listed word by word on the card (the model can say nothing else).
LISTED_VOCABULARY = 60


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
        beams, shown = self.beam_size, self.n_best
        search = "greedy" if beams == 1 else f"beam search, {beams} beams, {shown} alternatives shown"
        ngram = self.captioner.options(beams).no_repeat_ngram_size
        return f"{search}, no repeated {ngram}-grams" if ngram else search

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


@dataclass(frozen=True)
class ModelCard:
    """What the page tells about the model (each field a short text; NOT_RECORDED when unknown)."""

    task: str
    encoder: str
    decoder: str
    training_data: str
    image_size: str
    vocabulary: str
    validation: str
    training: str
    decoding: str
    known_words: str

    def rows(self) -> list[tuple[str, str]]:
        """(label, text) for each field, in order."""
        return [(field.name.replace("_", " ").capitalize(), getattr(self, field.name)) for field in fields(self)]


def read_model_card(path: str | Path, decoding: str) -> ModelCard:
    """The model card of a captioning checkpoint (read weights-only; CheckpointError names the file)."""
    checkpoint = load_checkpoint_file(path)
    header = header_of(checkpoint, path)
    if header.task != Task.CAPTIONING:
        raise CheckpointError(f"{path}: the checkpoint's task is {header.task.value}, but the demo needs captioning")
    return model_card(header, decoding, checkpoint.get("global_step"))


def model_card(header: CheckpointHeader, decoding: str, steps: int | None = None) -> ModelCard:
    """The card from a checkpoint's header (and the optimizer steps Lightning stored beside it)."""
    model, tokenizer = header.model, header.tokenizer.to_dict()
    image_size = header.preprocessing.image_size
    return ModelCard(
        task=header.task.value,
        encoder=_named_with(model.encoder, model.encoder_args, ENCODER_KEYS),
        decoder=_named_with(model.decoder, model.decoder_args, DECODER_KEYS),
        training_data=_training_data(header.data.name, header.data.examples),
        image_size=f"{image_size[1]} x {image_size[0]} pixels (width x height)",
        vocabulary=f"{model.vocab_size:,} tokens ({tokenizer.get('type', 'unknown')} tokenizer)",
        validation=_validation(header.metrics),
        training=f"{steps:,} optimizer steps" if isinstance(steps, int) else NOT_RECORDED,
        decoding=decoding,
        known_words=_known_words(tokenizer.get("tokens")),
    )


def _named_with(name: str, args: dict[str, Any], keys: tuple[str, ...]) -> str:
    details = ", ".join(f"{key} {args[key]}" for key in keys if key in args)
    return f"{name} ({details})" if details else name


def _known_words(tokens: list[str] | None) -> str:
    """The tokens a small vocabulary holds (special ones left out)."""
    if not tokens:
        return NOT_RECORDED
    words = [token for token in tokens if not token.startswith("<")]
    return ", ".join(words) if len(words) <= LISTED_VOCABULARY else f"{len(words):,} (too many to list)"


def _training_data(name: str, examples: int | None) -> str:
    """What the data format holds (never a local path: the page may face a LAN), and how many examples."""
    if name == NOT_RECORDED:
        return NOT_RECORDED
    text = DATA_FORMATS.get(name, name)
    return f"{text}: {examples:,} training examples" if examples else text


def _validation(metrics: dict[str, float]) -> str:
    """The validation metrics recorded when the checkpoint was written (the loss left out)."""
    shown = {key: value for key, value in metrics.items() if not key.endswith("loss")}
    if not shown:
        return NOT_RECORDED
    scores = ", ".join(f"{key} = {value:.4g}" for key, value in sorted(shown.items()))
    return f"{scores} (when this checkpoint was saved)"
