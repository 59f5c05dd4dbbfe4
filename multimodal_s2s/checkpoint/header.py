"""The typed checkpoint header: everything besides the weights that turns a checkpoint into a working model.

It travels in the checkpoint file (``checkpoint.files``) as plain data: the task, the model config,
the tokenizers, the preprocessing, the decoding defaults or the label set, a description of the
training data and its validation metrics, and a format version. Together with the weights it rebuilds
the model and everything around it, as whisper's ``ModelDimensions`` do, so that evaluation, resuming
and inference never rebuild a vocabulary or a preprocessing from data.

Headers written before format 1 (the task "seq2seq" plus ``preprocess["task"]``, labels at the top
level) are upgraded on reading; a header of a newer format is refused in one line. Format 2 added
``AudioPreprocessing.silence_pad_seconds``; an older ASR header takes it from the recipe that Lightning
saved beside it (``checkpoint.files.recipe_silence_pad``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any

from multimodal_s2s.checkpoint.config import ModelConfig
from multimodal_s2s.errors import first_line
from multimodal_s2s.tokenizers import Tokenizer, tokenizer_from_dict

FORMAT_VERSION = 2
#: The first format whose AudioPreprocessing records ``silence_pad_seconds``.
SILENCE_PAD_FORMAT = 2
#: What a header says of what it does not record (the training data of the first-layout headers).
NOT_RECORDED = "not recorded"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, not this suite's, or of another task (one line)."""


class Task(str, Enum):
    """The four user-level tasks; each has its pipeline (``multimodal_s2s.pipelines``)."""

    CAPTIONING = "captioning"
    ASR = "asr"
    SEGMENTATION = "segmentation"
    TRANSLATION = "translation"


@dataclass(frozen=True)
class ImagePreprocessing:
    """How an image is prepared for the network: resized to ``image_size`` (H, W), then normalized.
    ``weights``: the pretrained weights (by name) whose normalisation ``mean`` and ``std`` are, trained at
    ``weights_input_size`` (H, W); None: the data's options (older headers too)."""

    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str | None = None
    weights_input_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class AudioPreprocessing:
    """What transcription needs besides the tokenizer.

    Attributes:
        sample_rate: Hz of the waveforms the features are computed from.
        max_seconds: the longest training utterance (transcription windows are at most this long).
        median_seconds: the median one (pause-separated speech is joined up to this).
        tokens_per_second: the most target tokens per second of audio in training (bounds decoding).
        silence_pad_seconds: the most digital silence training put before and after each utterance (the
            recipe's ``data.silence_pad``; 0: none, or not recorded): transcription windows keep as much
            after speech (``Transcriber.default_pad_after_seconds``).
        log_mel: the features' front end (``preprocessing.audio.AudioFeatures``): "normalized" (the suite's)
            or "whisper" (whisper's 30 s log-mel: imported whisper models), in training and inference alike.
    """

    sample_rate: int
    max_seconds: float
    median_seconds: float
    tokens_per_second: float
    silence_pad_seconds: float = 0.0
    log_mel: str = "normalized"

    def __post_init__(self) -> None:
        if not is_seconds(self.silence_pad_seconds):
            raise ValueError(f"silence_pad_seconds must be a finite number >= 0, got {self.silence_pad_seconds!r}")


def is_seconds(value: Any) -> bool:
    """Whether ``value`` is a finite number >= 0 (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class DecodingDefaults:
    """The decoding options used in validation: the pipelines' defaults. ``no_repeat_ngram_size`` None
    (a header that does not record it) becomes the task's default in ``CheckpointHeader``;
    ``end_at_max_length``: see ``DecodingOptions`` (imported Marian models set it); ``suppress_tokens``,
    ``suppress_at_start`` and ``beam_rule``: see ``DecodingOptions`` (imported whisper models set them: its
    suppression rules and beam search), ``early_stopping``, ``renormalize`` and ``length_offset`` (imported BART
    models set them:
    HF's beam search as their config asks), the model's rules, which every decoding of it follows (``rules``)."""

    beam_size: int = 1
    max_length: int = 64
    length_penalty: float = 1.0
    no_repeat_ngram_size: int | None = None
    end_at_max_length: bool = False
    suppress_tokens: tuple[int, ...] = ()
    suppress_at_start: tuple[int, ...] = ()
    beam_rule: str = "hf"
    early_stopping: bool = False
    renormalize: bool = True
    length_offset: int = 0

    def __post_init__(self) -> None:
        for name in ("suppress_tokens", "suppress_at_start"):  # lists when read back from JSON
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def rules(self) -> dict[str, Any]:
        """The ``DecodingOptions`` fields that belong to the model, not to a search: suppression, beam rule,
        early stopping, renormalization and length offset."""
        return {"suppress_tokens": self.suppress_tokens, "suppress_at_start": self.suppress_at_start,
                "beam_rule": self.beam_rule, "early_stopping": self.early_stopping,
                "renormalize": self.renormalize, "length_offset": self.length_offset}


#: The repeated n-gram ban of captions and translations in words or BPE pieces, on by default: it stops
#: loops ("a large red red red ..."). Training references that repeat an n-gram (which the ban would
#: forbid), n = 3 / 4: shapes 0% / 0%, Flickr8k 0.50% / 0.12%, Multi30k de (BPE) 0.34% / 0.06%. Character
#: outputs repeat 4-grams (dates 0.38%: "2000-10-10") and ASR has its own checks (``fallback``): no ban.
DEFAULT_NO_REPEAT_NGRAM = 4
CHARACTER_TOKENIZER = "char"


def default_no_repeat_ngram_size(task: Task, tokenizer: Tokenizer | None) -> int:
    """The ``no_repeat_ngram_size`` a text-out checkpoint decodes with when its header names none."""
    if task in (Task.CAPTIONING, Task.TRANSLATION) and getattr(tokenizer, "type_name", None) != CHARACTER_TOKENIZER:
        return DEFAULT_NO_REPEAT_NGRAM
    return 0


@dataclass(frozen=True)
class LabelSet:
    """A segmentation model's classes: names, one RGB colour each, the mask value that is no class,
    and the loss weights used in training (None: unweighted)."""

    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int
    class_weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TrainingData:
    """What the model was trained on, for model cards: a short name (e.g. "shapes", "camvid"), where
    it was read from (None for embedded data) and how many training examples there were."""

    name: str
    root: str | None = None
    examples: int | None = None


@dataclass
class CheckpointHeader:
    """Everything besides the weights that turns a checkpoint into a working model.

    Which fields a task needs: text-out tasks a ``tokenizer`` and ``decoding``; translation also a
    ``source_tokenizer``; captioning and segmentation ``ImagePreprocessing``; ASR
    ``AudioPreprocessing``; segmentation ``labels``. ``ctc_weight`` > 0: the model has a CTC head
    (ASR). ``metrics``: the validation metrics when the checkpoint was written (e.g. "val/bleu4").
    """

    task: Task
    model: ModelConfig
    data: TrainingData
    preprocessing: ImagePreprocessing | AudioPreprocessing | None = None
    tokenizer: Tokenizer | None = None
    source_tokenizer: Tokenizer | None = None
    decoding: DecodingDefaults | None = None
    labels: LabelSet | None = None
    ctc_weight: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def has_ctc_head(self) -> bool:
        """Whether the model has a CTC head (``ctc_head.*`` weights): training, resuming and inference
        all decide it here."""
        return self.ctc_weight > 0

    def __post_init__(self) -> None:
        self.task = Task(self.task)
        missing = [name for name in _required_fields(self.task) if getattr(self, name) is None]
        if missing:
            raise CheckpointError(f"the {self.task.value} header needs {', '.join(missing)}")
        wanted = AudioPreprocessing if self.task == Task.ASR else ImagePreprocessing
        if self.task != Task.TRANSLATION and not isinstance(self.preprocessing, wanted):
            raise CheckpointError(f"the {self.task.value} header needs {wanted.__name__}")
        if self.decoding is not None and self.decoding.no_repeat_ngram_size is None:
            ngram = default_no_repeat_ngram_size(self.task, self.tokenizer)
            self.decoding = replace(self.decoding, no_repeat_ngram_size=ngram)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, numbers, lists, dicts): what ``torch.load(weights_only=True)`` reads back."""
        return {
            "format_version": self.format_version,
            "task": self.task.value,
            "model": self.model.to_dict(),
            "data": asdict(self.data),
            "preprocessing": None if self.preprocessing is None else asdict(self.preprocessing),
            "tokenizer": None if self.tokenizer is None else self.tokenizer.to_dict(),
            "source_tokenizer": None if self.source_tokenizer is None else self.source_tokenizer.to_dict(),
            "decoding": None if self.decoding is None else asdict(self.decoding),
            "labels": None if self.labels is None else asdict(self.labels),
            "ctc_weight": self.ctc_weight,
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointHeader:
        """The inverse of ``to_dict``; older formats are upgraded. CheckpointError when it does not fit."""
        version = data.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"header format {version!r} is newer than this version of multimodal_s2s reads ({FORMAT_VERSION})"
            )
        if version == 0:
            data = _upgrade_from_v0(data)
        try:
            return _header_from_current(data)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, CheckpointError):
                raise
            raise CheckpointError(f"malformed header ({type(error).__name__}: {first_line(error)})") from None


def _required_fields(task: Task) -> tuple[str, ...]:
    return {
        Task.CAPTIONING: ("tokenizer", "decoding", "preprocessing"),
        Task.ASR: ("tokenizer", "decoding", "preprocessing"),
        Task.TRANSLATION: ("tokenizer", "source_tokenizer", "decoding"),
        Task.SEGMENTATION: ("labels", "preprocessing"),
    }[task]


def _header_from_current(data: dict[str, Any]) -> CheckpointHeader:
    task = Task(data["task"])
    preprocessing = data.get("preprocessing")
    if preprocessing is not None:
        kind = AudioPreprocessing if task == Task.ASR else ImagePreprocessing
        preprocessing = kind(**_tuples(preprocessing))
    labels = data.get("labels")
    if labels is not None:
        labels = _tuples(labels)
        labels["palette"] = tuple(tuple(colour) for colour in labels["palette"])
        labels = LabelSet(**labels)
    return CheckpointHeader(
        task=task,
        model=ModelConfig.from_dict(data["model"]),
        data=TrainingData(**data["data"]),
        preprocessing=preprocessing,
        tokenizer=_tokenizer(data.get("tokenizer")),
        source_tokenizer=_tokenizer(data.get("source_tokenizer")),
        decoding=None if data.get("decoding") is None else DecodingDefaults(**data["decoding"]),
        labels=labels,
        ctc_weight=float(data.get("ctc_weight", 0.0)),
        metrics={str(key): float(value) for key, value in (data.get("metrics") or {}).items()},
        format_version=FORMAT_VERSION,
    )


def _tokenizer(data: dict[str, Any] | None) -> Tokenizer | None:
    return None if data is None else tokenizer_from_dict(data)


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples of the frozen dataclasses."""
    return {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()}


def _upgrade_from_v0(old: dict[str, Any]) -> dict[str, Any]:
    """A header of the first layout (no format version) in the current one."""
    preprocess = dict(old.get("preprocess") or {})
    task = preprocess.pop("task", None) or old["task"]
    if task == "seq2seq":  # the first captioning checkpoints did not name their task
        task = Task.CAPTIONING.value
    name = preprocess.pop("format", NOT_RECORDED)
    for key in ("tokenizer", "source_lang", "target_lang"):
        preprocess.pop(key, None)
    labels = None
    if task == Task.SEGMENTATION.value:
        keys = ("class_names", "palette", "ignore_index", "class_weights")
        labels = {key: old.get(key) for key in keys}
    return {
        "task": task,
        "model": old["model"],
        "data": {"name": name},
        "preprocessing": preprocess or None,
        "tokenizer": old.get("tokenizer"),
        "source_tokenizer": old.get("source_tokenizer"),
        "decoding": old.get("decoding"),
        "labels": labels,
        "ctc_weight": (old.get("ctc") or {}).get("weight", 0.0),
    }


def same_model(first: CheckpointHeader, second: CheckpointHeader) -> bool:
    """Whether two headers describe the same model around the same vocabularies, labels and inputs
    (metrics and the training-data description may differ)."""
    ignored = ("metrics", "data")
    one, other = first.to_dict(), second.to_dict()
    return all(one[key] == other[key] for key in one if key not in ignored)
