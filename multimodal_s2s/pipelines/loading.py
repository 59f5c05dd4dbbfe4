"""``load_pipeline``: the pipeline class of a checkpoint's task, built from the checkpoint alone (a file, a
Hub folder or a Hub repository id)."""

from __future__ import annotations

from pathlib import Path

import torch

from multimodal_s2s.checkpoint import Task
from multimodal_s2s.checkpoint.hub import read_model
from multimodal_s2s.onnx_runtime.manifest import is_export
from multimodal_s2s.onnx_runtime.pipelines import load_export
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
    """The pipeline of the checkpoint's task (Captioner, Transcriber, Segmenter or Translator); ``path``: a
    checkpoint file, a Hub folder or a Hub repository id ("user/name"), as ``Pipeline.from_checkpoint`` takes;
    given an ONNX export folder, its onnxruntime pipeline (``onnx_runtime.load_export``; CPU)."""
    if is_export(path):
        return load_export(path)
    checkpoint = read_model(path)
    return PIPELINES[checkpoint.header.task](checkpoint, device)
