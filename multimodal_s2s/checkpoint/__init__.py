"""The checkpoint format, below everything that reads it: a typed header beside the weights, read weights-only.

- ``config``: ``ModelConfig``, the model's names and numbers (what rebuilds it).
- ``header``: ``CheckpointHeader`` and its parts (task, preprocessing, tokenizers, decoding defaults,
  labels, training data), their plain-data form and the upgrades of older formats.
- ``files``: the file's keys, ``read_checkpoint`` / ``load_checkpoint_file`` (``weights_only=True``),
  ``save_suite_checkpoint`` (a checkpoint made outside a fit), ``is_suite_checkpoint``, ``header_of``.

It imports nothing of the suite but the contract's types, the tokenizers and ``outputs`` (atomic writes);
building a model from a checkpoint is ``multimodal_s2s.models.from_checkpoint``, above it.
"""

from multimodal_s2s.checkpoint.config import PRETRAINED_KEY, ModelConfig
from multimodal_s2s.checkpoint.files import (
    CHECKPOINT_KEY,
    CTC_HEAD_PREFIX,
    DATAMODULE_HPARAMS_KEY,
    MODEL_PREFIX,
    STATE_DICT_KEY,
    Checkpoint,
    header_for_trainer,
    header_of,
    is_suite_checkpoint,
    load_checkpoint_file,
    read_checkpoint,
    recipe_silence_pad,
    save_suite_checkpoint,
    weights_under,
)
from multimodal_s2s.checkpoint.header import (
    FORMAT_VERSION,
    NOT_RECORDED,
    AudioPreprocessing,
    CheckpointError,
    CheckpointHeader,
    DecodingDefaults,
    ImagePreprocessing,
    LabelSet,
    Task,
    TrainingData,
    default_no_repeat_ngram_size,
    same_model,
)

__all__ = [
    "CHECKPOINT_KEY",
    "CTC_HEAD_PREFIX",
    "DATAMODULE_HPARAMS_KEY",
    "FORMAT_VERSION",
    "MODEL_PREFIX",
    "NOT_RECORDED",
    "PRETRAINED_KEY",
    "STATE_DICT_KEY",
    "AudioPreprocessing",
    "Checkpoint",
    "CheckpointError",
    "CheckpointHeader",
    "DecodingDefaults",
    "ImagePreprocessing",
    "LabelSet",
    "ModelConfig",
    "Task",
    "TrainingData",
    "default_no_repeat_ngram_size",
    "header_for_trainer",
    "header_of",
    "is_suite_checkpoint",
    "load_checkpoint_file",
    "read_checkpoint",
    "recipe_silence_pad",
    "same_model",
    "save_suite_checkpoint",
    "weights_under",
]
