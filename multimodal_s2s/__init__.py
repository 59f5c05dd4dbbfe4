"""multimodal_s2s: encoder-decoder models for images, audio and text, from interchangeable parts.

The public names below are imported when first used (PEP 562), so that ``import multimodal_s2s`` and
``mms2s --help`` do not pay for torch, torchvision and timm before a model or pipeline is asked for.
"""

from __future__ import annotations

from multimodal_s2s.lazy import lazy_exports

#: public name -> the module that defines it
_EXPORTS = {
    "Captioner": "multimodal_s2s.pipelines",
    "DecodingOptions": "multimodal_s2s.decoding",
    "DecodingResult": "multimodal_s2s.decoding",
    "EncoderDecoder": "multimodal_s2s.models",
    "EncoderInfo": "multimodal_s2s.types",
    "FeatureMaps": "multimodal_s2s.types",
    "IncompatiblePairError": "multimodal_s2s.registry",
    "LiveOptions": "multimodal_s2s.pipelines",
    "ModelConfig": "multimodal_s2s.models",
    "SegmentationModel": "multimodal_s2s.models",
    "Segmenter": "multimodal_s2s.pipelines",
    "SequenceOutput": "multimodal_s2s.types",
    "StreamingTranscriber": "multimodal_s2s.pipelines",
    "Transcriber": "multimodal_s2s.pipelines",
    "TranscriptionOptions": "multimodal_s2s.pipelines",
    "Translator": "multimodal_s2s.pipelines",
    "build_model": "multimodal_s2s.models",
    "create_model": "multimodal_s2s.models",
    "decode": "multimodal_s2s.decoding",
    "list_decoders": "multimodal_s2s.models",  # models/ registers the built-in encoders and decoders
    "list_encoders": "multimodal_s2s.models",
    "load_pipeline": "multimodal_s2s.pipelines",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
