"""From checkpoint to answer: one pipeline per task, each built from a checkpoint alone.

    >>> import multimodal_s2s as mms
    >>> captioner = mms.load_pipeline("runs/captioning/shapes/version_0/checkpoints/last.ckpt")
    >>> captioner(["scene.png"])[0].text

Every pipeline has ``from_checkpoint(path, device="auto")``, is called on a list of inputs (paths or
in-memory objects), batches inside and returns typed results; ``load_pipeline`` picks the class from
the checkpoint's task. The names below are imported when first used (PEP 562), so that an app that
needs only the options of one pipeline (``mms2s transcribe --help``) does not load every model.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module of this package that defines it
_EXPORTS = {
    "Caption": "captioning",
    "Captioner": "captioning",
    "Hypothesis": "text",
    "PIPELINES": "loading",
    "Pipeline": "base",
    "Segment": "transcripts",
    "Segmentation": "segmentation",
    "Segmenter": "segmentation",
    "TextGeneration": "text",
    "Transcriber": "transcription",
    "Transcript": "transcripts",
    "TranscriptionItem": "transcripts",
    "TranscriptionOptions": "transcription_options",
    "Translation": "translation",
    "Translator": "translation",
    "ModelCard": "card",
    "json_score": "text",
    "load_pipeline": "loading",
    "resolve_device": "base",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (then kept in the package's namespace)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
