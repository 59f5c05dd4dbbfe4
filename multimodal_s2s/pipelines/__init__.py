"""From checkpoint to answer: one pipeline per task, each built from a checkpoint alone.

    >>> import multimodal_s2s as mms
    >>> captioner = mms.load_pipeline("runs/captioning/shapes/version_0/checkpoints/last.ckpt")
    >>> captioner(["scene.png"])[0].text

Every pipeline has ``from_checkpoint(path, device="auto")``, is called on a list of inputs (paths or
in-memory objects), batches inside and returns typed results; ``load_pipeline`` picks the class from
the checkpoint's task.
"""

from __future__ import annotations

from pathlib import Path

import torch

from multimodal_s2s.checkpoint import Task, read_checkpoint
from multimodal_s2s.pipelines.base import Pipeline, resolve_device
from multimodal_s2s.pipelines.captioning import Caption, Captioner
from multimodal_s2s.pipelines.card import ModelCard
from multimodal_s2s.pipelines.segmentation import Segmentation, Segmenter
from multimodal_s2s.pipelines.text import Hypothesis, TextGeneration, json_score
from multimodal_s2s.pipelines.transcription import Transcriber
from multimodal_s2s.pipelines.transcription_options import TranscriptionOptions
from multimodal_s2s.pipelines.transcripts import Segment, Transcript, TranscriptionItem
from multimodal_s2s.pipelines.translation import Translation, Translator

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


__all__ = [
    "Caption",
    "Captioner",
    "Hypothesis",
    "ModelCard",
    "PIPELINES",
    "Pipeline",
    "Segment",
    "Segmentation",
    "Segmenter",
    "TextGeneration",
    "Transcriber",
    "Transcript",
    "TranscriptionItem",
    "TranscriptionOptions",
    "Translation",
    "Translator",
    "json_score",
    "load_pipeline",
    "resolve_device",
]
