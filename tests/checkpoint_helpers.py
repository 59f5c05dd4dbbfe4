"""Small valid checkpoint headers of each task, and checkpoint files written from them (no training)."""

from __future__ import annotations

from pathlib import Path

import torch

from multimodal_s2s.checkpoint import (
    CHECKPOINT_KEY,
    MODEL_PREFIX,
    AudioPreprocessing,
    CheckpointHeader,
    DecodingDefaults,
    ImagePreprocessing,
    LabelSet,
    Task,
    TrainingData,
)
from multimodal_s2s.data.segmentation import voc_palette
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.tokenizers import CharTokenizer

SEGMENTATION_CLASSES = ("bg", "cat", "dog")
IMAGE = ImagePreprocessing((32, 48), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def segmentation_header() -> CheckpointHeader:
    model = ModelConfig("segnet_basic", "segnet", {"channels": 4, "kernel_size": 3}, {}, num_classes=3)
    palette = tuple(tuple(colour) for colour in voc_palette(3))
    labels = LabelSet(SEGMENTATION_CLASSES, palette, ignore_index=255)
    return CheckpointHeader(Task.SEGMENTATION, model, TrainingData("test"), IMAGE, labels=labels)


#: Small encoders of each text-out task: a timm test CNN, a 1-layer audio Transformer, a small LSTM.
TEXT_ENCODERS = {
    Task.CAPTIONING: ("cnn", {"backbone": "test_resnet", "out_indices": [1, 2]}),
    Task.ASR: ("audio_transformer_tiny", {"d_model": 32, "num_layers": 1, "num_heads": 2}),
    Task.TRANSLATION: ("text_lstm_tiny", {"embed_dim": 16, "hidden_size": 16}),
}
TINY_DECODER = {"d_model": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64}


def text_header(task: Task) -> CheckpointHeader:
    """A valid header of a text-out ``task`` with a small model and a character tokenizer."""
    tokenizer = CharTokenizer.train(["abc def ghi"])
    encoder, encoder_args = TEXT_ENCODERS[task]
    if task == Task.TRANSLATION:
        encoder_args = {**encoder_args, "vocab_size": tokenizer.vocab_size}
    model = ModelConfig(encoder, "transformer", encoder_args, TINY_DECODER, vocab_size=tokenizer.vocab_size)
    audio = AudioPreprocessing(16000, max_seconds=2.0, median_seconds=1.0, tokens_per_second=10.0)
    return CheckpointHeader(
        task, model, TrainingData("test"),
        preprocessing={Task.CAPTIONING: IMAGE, Task.ASR: audio, Task.TRANSLATION: None}[task],
        tokenizer=tokenizer, source_tokenizer=tokenizer if task == Task.TRANSLATION else None,
        decoding=DecodingDefaults(beam_size=2, max_length=6),
    )


def write_checkpoint(path: Path, header: CheckpointHeader, state_dict: dict | None = None) -> Path:
    """A checkpoint file holding ``header`` and ``state_dict`` (default: none, for tests that never build)."""
    torch.save({"state_dict": state_dict or {}, CHECKPOINT_KEY: header.to_dict()}, path)
    return path


def random_checkpoint(path: Path, header: CheckpointHeader) -> Path:
    """A checkpoint of ``header`` with the random initial weights of its model (seeded)."""
    torch.manual_seed(0)
    model = build_model(header.model)
    return write_checkpoint(path, header, {f"{MODEL_PREFIX}{key}": value for key, value in model.state_dict().items()})
