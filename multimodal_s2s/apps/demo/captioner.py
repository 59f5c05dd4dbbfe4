"""The demo's one door to the model: ``DemoCaptioner`` turns an image into the page's JSON answer, and
``read_model_card`` reads what the checkpoint says about the model.

They are the only places in the demo that call the captioning code (``inference.ImageCaptioner`` and
the checkpoint reader): moving to another pipeline class changes ``DemoCaptioner.load``,
``DemoCaptioner.caption`` and ``read_model_card``, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from multimodal_s2s.apps.demo.heatmaps import attention_scale, display_copy, heatmaps, png_data_url
from multimodal_s2s.checkpoint import CHECKPOINT_KEY, read_checkpoint
from multimodal_s2s.decoding import DecodingOptions
from multimodal_s2s.inference import TASK, ImageCaptioner, json_score

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

    def __init__(self, captioner: ImageCaptioner, options: DecodingOptions):
        self.captioner = captioner
        self.options = options

    @classmethod
    def load(
        cls, path: str | Path, device: str = "cpu", beam_size: int | None = None, n_best: int = DEFAULT_N_BEST
    ) -> DemoCaptioner:
        """Raises CheckpointError (one line naming the file) or ValueError (a bad device)."""
        captioner = ImageCaptioner.load(path, device)
        beam = beam_size or captioner.pipeline.decoding.get("beam_size", 1)
        return cls(captioner, captioner.pipeline.options(beam, min(n_best, beam), return_attention=True))

    @property
    def decoding(self) -> str:
        beams, shown = self.options.beam_size, self.options.n_best
        return "greedy" if beams == 1 else f"beam search, {beams} beams, {shown} alternatives shown"

    def caption(self, image: Image.Image) -> Captioned:
        """Caption one RGB image."""
        generation = self.captioner.caption([image], self.options)[0]
        return Captioned(
            text=generation.text,
            score=generation.score,
            alternatives=list(generation.n_best),
            words=self.captioner.pipeline.token_texts(generation.tokens),
            maps=self.captioner.attention_maps(generation),
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
    """The model card of a captioning checkpoint (read safely; CheckpointError names the file)."""
    return model_card(read_checkpoint(path, TASK), decoding)


def model_card(checkpoint: dict[str, Any], decoding: str) -> ModelCard:
    """The card from a checkpoint's ``mms2s`` header and what Lightning stored beside it (the data
    module's arguments, the ModelCheckpoint callback's best score, the step count)."""
    meta = checkpoint[CHECKPOINT_KEY]
    model, preprocess, tokenizer = meta["model"], meta.get("preprocess") or {}, meta.get("tokenizer") or {}
    image_size = preprocess.get("image_size")
    steps = checkpoint.get("global_step")
    return ModelCard(
        task=str(preprocess.get("task") or meta.get("task")),
        encoder=_named_with(model["encoder"], model.get("encoder_args") or {}, ENCODER_KEYS),
        decoder=_named_with(model["decoder"], model.get("decoder_args") or {}, DECODER_KEYS),
        training_data=_training_data(checkpoint.get("datamodule_hyper_parameters")),
        image_size=f"{image_size[1]} x {image_size[0]} pixels (width x height)" if image_size else NOT_RECORDED,
        vocabulary=f"{model['vocab_size']:,} tokens ({tokenizer.get('type', 'unknown')} tokenizer)",
        validation=_best_validation(checkpoint.get("callbacks") or {}),
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


def _training_data(data_args: Any) -> str:
    """The data module's format (and split or scene count) from its stored arguments."""
    if not isinstance(data_args, dict) or "format" not in data_args:
        return NOT_RECORDED
    data_format = str(data_args["format"])
    text = DATA_FORMATS.get(data_format, data_format)
    if data_format == "shapes" and data_args.get("shapes_train_size"):
        side = data_args.get("shapes_image_size")
        return f"{text}: {data_args['shapes_train_size']:,} scenes, {side} x {side} pixels"
    split = data_args.get("train_split")
    return f"{text}, split {split}" if split else text


def _best_validation(callbacks: dict[str, Any]) -> str:
    """The best score of the ModelCheckpoint callback's monitored metric, if training recorded one."""
    for state in callbacks.values():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_score") is not None:
            return f"{state['monitor']} = {float(state['best_model_score']):.4g} (the best of its run)"
    return NOT_RECORDED
