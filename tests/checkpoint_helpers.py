"""Small valid checkpoint headers of each task, and checkpoint files written from them (no training)."""

from __future__ import annotations

from pathlib import Path

import torch

from multimodal_s2s.checkpoint import (
    CHECKPOINT_KEY,
    AudioPreprocessing,
    CheckpointHeader,
    DecodingDefaults,
    ImagePreprocessing,
    LabelSet,
    Task,
    TrainingData,
)
from multimodal_s2s.data.segmentation import voc_palette
from multimodal_s2s.models import ModelConfig
from multimodal_s2s.tokenizers import CharTokenizer

SEGMENTATION_CLASSES = ("bg", "cat", "dog")
IMAGE = ImagePreprocessing((32, 48), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def segmentation_header() -> CheckpointHeader:
    model = ModelConfig("segnet_basic", "segnet", {"channels": 4, "kernel_size": 3}, {}, num_classes=3)
    palette = tuple(tuple(colour) for colour in voc_palette(3))
    labels = LabelSet(SEGMENTATION_CLASSES, palette, ignore_index=255)
    return CheckpointHeader(Task.SEGMENTATION, model, TrainingData("test"), IMAGE, labels=labels)


def text_header(task: Task) -> CheckpointHeader:
    """A valid header of a text-out ``task`` (its model is not meant to be built)."""
    tokenizer = CharTokenizer.train(["abc def"])
    encoder = {Task.CAPTIONING: "cnn_tiny", Task.ASR: "audio_transformer_tiny", Task.TRANSLATION: "text_lstm_tiny"}
    model = ModelConfig(encoder[task], "transformer_tiny", vocab_size=tokenizer.vocab_size)
    audio = AudioPreprocessing(16000, max_seconds=2.0, median_seconds=1.0, tokens_per_second=10.0)
    return CheckpointHeader(
        task, model, TrainingData("test"),
        preprocessing={Task.CAPTIONING: IMAGE, Task.ASR: audio, Task.TRANSLATION: None}[task],
        tokenizer=tokenizer, source_tokenizer=tokenizer if task == Task.TRANSLATION else None,
        decoding=DecodingDefaults(),
    )  # fmt: skip


def write_checkpoint(path: Path, header: CheckpointHeader, state_dict: dict | None = None) -> Path:
    """A checkpoint file holding ``header`` and ``state_dict`` (default: none, for tests that never build)."""
    torch.save({"state_dict": state_dict or {}, CHECKPOINT_KEY: header.to_dict()}, path)
    return path
