"""Tiny text-out checkpoints of each task (random weights: ``checkpoint_helpers.text_header``; translation
with a Transformer encoder) exported to ONNX folders, and inputs of each task's encoder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from checkpoint_helpers import random_checkpoint, text_header

from multimodal_s2s.checkpoint import Task, read_checkpoint
from multimodal_s2s.onnx_export.text import export_text

TASKS = (Task.CAPTIONING, Task.ASR, Task.TRANSLATION)
OPSET = 18


def tiny_header(task: Task):
    """``text_header(task)``; translation's encoder is a 1-layer text Transformer (the export's text encoder)."""
    header = text_header(task)
    if task != Task.TRANSLATION:
        return header
    encoder_args = {"vocab_size": header.model.vocab_size, "d_model": 32, "num_layers": 1, "num_heads": 2,
                    "ff_dim": 64}
    return replace(header, model=replace(header.model, encoder="text_transformer_tiny", encoder_args=encoder_args))


def exported(folder: Path, task: Task) -> tuple[Path, Path]:
    """(checkpoint, export folder) of a tiny ``task`` model under ``folder``."""
    checkpoint = random_checkpoint(folder / f"{task.value}.ckpt", tiny_header(task))
    out = folder / f"{task.value}_onnx"
    export_text(read_checkpoint(checkpoint), out, OPSET)
    return checkpoint, out


def encoder_inputs(task: Task, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` inputs of ``task``'s tiny encoder: images (count, 3, 32, 48); log-mel (count, 80, 120) with
    lengths 40..120; source ids (count, 10) with lengths 2..10."""
    rng = np.random.default_rng(seed)
    if task == Task.CAPTIONING:
        return rng.standard_normal((count, 3, 32, 48), dtype=np.float32), None
    if task == Task.ASR:
        return rng.standard_normal((count, 80, 120), dtype=np.float32), rng.integers(40, 121, count)
    vocab = tiny_header(task).source_tokenizer.vocab_size
    return rng.integers(4, vocab, (count, 10)), rng.integers(2, 11, count)
