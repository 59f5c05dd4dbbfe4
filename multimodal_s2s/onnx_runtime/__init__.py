"""Text-out models exported by ``mms2s export --format onnx``, run with onnxruntime and numpy alone (no torch).

    >>> from multimodal_s2s.onnx_runtime import OnnxCaptioner
    >>> OnnxCaptioner("shapes_onnx")(["scene.png"])[0].text

``manifest``: the folder's layout and version checks; ``model``: the encoder (run once per input) and the
cached decoder step on onnxruntime; ``search``/``beam``: greedy, sampling and beam search, the suite's
``decoding`` step for step; ``features``: image and log-mel inputs in numpy; ``pipelines``: captioning and
translation on a folder (``load_export`` picks by task; ASR: ``pipelines.onnx_transcription``, whose VAD
needs torch). Names are imported when first used.
"""

from __future__ import annotations

from multimodal_s2s.lazy import lazy_exports

_EXPORTS = {
    "ExportFormatError": "multimodal_s2s.onnx_runtime.manifest",
    "OnnxCaptioner": "multimodal_s2s.onnx_runtime.pipelines",
    "OnnxTextModel": "multimodal_s2s.onnx_runtime.model",
    "OnnxTranslator": "multimodal_s2s.onnx_runtime.pipelines",
    "SearchOptions": "multimodal_s2s.onnx_runtime.search",
    "is_export": "multimodal_s2s.onnx_runtime.manifest",
    "load_export": "multimodal_s2s.onnx_runtime.pipelines",
    "read_manifest": "multimodal_s2s.onnx_runtime.manifest",
    "search": "multimodal_s2s.onnx_runtime.search",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
