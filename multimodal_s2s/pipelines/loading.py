"""``load_pipeline``: the pipeline class of a checkpoint's task, built from the checkpoint alone."""

from __future__ import annotations

from pathlib import Path

import torch

from multimodal_s2s.checkpoint import Task, read_checkpoint
from multimodal_s2s.pipelines.base import Pipeline
from multimodal_s2s.pipelines.captioning import Captioner
from multimodal_s2s.pipelines.segmentation import Segmenter
from multimodal_s2s.pipelines.transcription import Transcriber
from multimodal_s2s.pipelines.translation import Translator

PIPELINES: dict[Task, type[Pipeline]] = {
    Task.CAPTIONING: Captioner,
    Task.ASR: Transcriber,
    Task.SEGMENTATION: Segmenter,
    Task.TRANSLATION: Translator,
}


def load_pipeline(path: str | Path, device: str | torch.device = "auto") -> Pipeline:
    """The pipeline of the checkpoint's task (Captioner, Transcriber, Segmenter or Translator)."""
    checkpoint = read_checkpoint(path)
    return PIPELINES[checkpoint.header.task](checkpoint, device)
