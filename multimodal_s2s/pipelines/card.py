"""A model card: what a pipeline's model is and knows, read from its checkpoint, for people.

``Pipeline.model_card()`` gives one; ``rows()`` says it in short texts (the demo page shows them). Texts
never name a local path: the demo page may face a LAN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multimodal_s2s.checkpoint import NOT_RECORDED, ModelConfig, Task, TrainingData

#: What each data format of the training recipes holds (other names are shown as they are).
DATA_FORMATS = {
    "shapes": "procedural scenes of one or two coloured shapes (the suite's shapes generator)",
    "flickr8k": "Flickr8k photos",
    "coco": "COCO photos",
    "jsonl": "images listed in a JSON-lines caption file",
}
#: Arguments of the encoder / decoder named on the card, when the model has them.
ENCODER_KEYS = ("backbone",)
DECODER_KEYS = ("num_layers", "d_model", "hidden_size")
#: A vocabulary this small is listed word by word (the model can say nothing else).
LISTED_VOCABULARY = 60


@dataclass(frozen=True)
class ModelCard:
    """What a model is and knows (None: the task has no such thing, or the checkpoint does not say).

    Attributes:
        task: the checkpoint's task.
        model: the encoder and decoder names and arguments, and the output size.
        parameters: the model's parameter count.
        data: what it was trained on.
        metrics: the validation metrics when the checkpoint was written.
        training_steps: the optimizer steps of its training.
        decoding: how it decodes ("greedy", "beam search, 4 beams, no repeated 4-grams"), for text-out tasks.
        tokenizer: the tokenizer's kind ("word", "char", "bpe") and ``vocabulary_size`` its ids.
        words: a listed vocabulary's units besides the special tokens (None for a BPE vocabulary).
        classes: a segmentation model's classes.
        image_size: (H, W) the network sees, for image tasks.
    """

    task: Task
    model: ModelConfig
    parameters: int
    data: TrainingData
    metrics: dict[str, float] = field(default_factory=dict)
    training_steps: int | None = None
    decoding: str | None = None
    tokenizer: str | None = None
    vocabulary_size: int | None = None
    words: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None

    @property
    def trained_on(self) -> str:
        """What the training data holds and how many examples it had."""
        if self.data.name == NOT_RECORDED:
            return NOT_RECORDED
        text = DATA_FORMATS.get(self.data.name, self.data.name)
        return f"{text}: {self.data.examples:,} training examples" if self.data.examples else text

    def rows(self) -> list[tuple[str, str]]:
        """(label, text) of each thing the card knows, in order (NOT_RECORDED when unknown)."""
        model = self.model
        rows = [
            ("Task", self.task.value),
            ("Encoder", _named_with(model.encoder, model.encoder_args, ENCODER_KEYS)),
            ("Decoder", _named_with(model.decoder, model.decoder_args, DECODER_KEYS)),
            ("Training data", self.trained_on),
        ]
        if self.image_size is not None:
            rows.append(("Image size", f"{self.image_size[1]} x {self.image_size[0]} pixels (width x height)"))
        if self.vocabulary_size is not None:
            rows.append(("Vocabulary", f"{self.vocabulary_size:,} tokens ({self.tokenizer} tokenizer)"))
        if self.classes is not None:
            rows.append(("Classes", ", ".join(self.classes)))
        rows.append(("Validation", _validation(self.metrics)))
        steps = self.training_steps
        rows.append(("Training", f"{steps:,} optimizer steps" if steps is not None else NOT_RECORDED))
        if self.decoding is not None:
            rows.append(("Decoding", self.decoding))
        if self.vocabulary_size is not None:
            rows.append(("Known words", _known_words(self.words)))
        return rows


def decoding_text(beam_size: int, shown: int | None = None, ngram: int | None = None) -> str:
    """How a text-out model decodes, for people; ``shown``: how many of the beam's hypotheses are shown,
    ``ngram``: the repeated n-gram ban's size (``no_repeat_ngram_size``; 0 or None: no ban)."""
    search = "greedy" if beam_size == 1 else f"beam search, {beam_size} beams"
    if beam_size > 1 and shown is not None:
        search += f", {shown} alternatives shown"
    return f"{search}, no repeated {ngram}-grams" if ngram else search


def _named_with(name: str, args: dict[str, Any], keys: tuple[str, ...]) -> str:
    details = ", ".join(f"{key} {args[key]}" for key in keys if key in args)
    return f"{name} ({details})" if details else name


def _known_words(words: tuple[str, ...] | None) -> str:
    if not words:
        return NOT_RECORDED
    return ", ".join(words) if len(words) <= LISTED_VOCABULARY else f"{len(words):,} (too many to list)"


def _validation(metrics: dict[str, float]) -> str:
    """The validation metrics recorded when the checkpoint was written (the loss left out)."""
    shown = {key: value for key, value in metrics.items() if not key.endswith("loss")}
    if not shown:
        return NOT_RECORDED
    scores = ", ".join(f"{key} = {value:.4g}" for key, value in sorted(shown.items()))
    return f"{scores} (when this checkpoint was saved)"
