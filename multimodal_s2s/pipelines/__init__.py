"""From checkpoint to answer: one pipeline per task, each built from a checkpoint alone.

    >>> import multimodal_s2s as mms
    >>> captioner = mms.load_pipeline("runs/captioning/shapes/version_0/checkpoints/last.ckpt")
    >>> captioner(["scene.png"])[0].text

Every pipeline has ``from_checkpoint(path, device="auto")``, is called on a list of inputs (paths or
in-memory objects), batches inside and returns typed results; ``load_pipeline`` picks the class from
the checkpoint's task. Both also take a Hub folder or a Hub repository id (``from_pretrained`` is the
same under huggingface_hub's name), which ``save_pretrained`` and ``push_to_hub`` write (``checkpoint.hub``).
The names below are imported when first used (PEP 562), so that an app that
needs only the options of one pipeline (``mms2s transcribe --help``) does not load every model.
"""

from __future__ import annotations

from multimodal_s2s.lazy import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    "Caption": "multimodal_s2s.pipelines.captioning",
    "Captioner": "multimodal_s2s.pipelines.captioning",
    "Hypothesis": "multimodal_s2s.pipelines.text",
    "LiveOptions": "multimodal_s2s.pipelines.transcription_options",
    "LiveUpdate": "multimodal_s2s.pipelines.live",
    "PIPELINES": "multimodal_s2s.pipelines.loading",
    "Pipeline": "multimodal_s2s.pipelines.base",
    "Segment": "multimodal_s2s.pipelines.transcripts",
    "Segmentation": "multimodal_s2s.pipelines.segmentation",
    "Segmenter": "multimodal_s2s.pipelines.segmentation",
    "StreamingTranscriber": "multimodal_s2s.pipelines.live",
    "TextGeneration": "multimodal_s2s.pipelines.text",
    "Transcriber": "multimodal_s2s.pipelines.transcription",
    "Transcript": "multimodal_s2s.pipelines.transcripts",
    "TranscriptionItem": "multimodal_s2s.pipelines.transcripts",
    "TranscriptionOptions": "multimodal_s2s.pipelines.transcription_options",
    "Translation": "multimodal_s2s.pipelines.translation",
    "Translator": "multimodal_s2s.pipelines.translation",
    "ModelCard": "multimodal_s2s.pipelines.card",
    "json_score": "multimodal_s2s.outputs",
    "load_pipeline": "multimodal_s2s.pipelines.loading",
    "resolve_device": "multimodal_s2s.pipelines.base",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
