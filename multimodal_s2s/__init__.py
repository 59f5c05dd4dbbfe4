"""multimodal_s2s: encoder-decoder models for images, audio and text, from interchangeable parts."""

from multimodal_s2s.decoding import DecodingOptions, DecodingResult, decode
from multimodal_s2s.models import EncoderDecoder, ModelConfig, SegmentationModel, build_model, create_model
from multimodal_s2s.pipelines import (
    Captioner,
    Segmenter,
    Transcriber,
    TranscriptionOptions,
    Translator,
    load_pipeline,
)
from multimodal_s2s.registry import IncompatiblePairError, list_decoders, list_encoders
from multimodal_s2s.types import EncoderInfo, FeatureMaps, SequenceOutput

__all__ = [
    "Captioner",
    "DecodingOptions",
    "DecodingResult",
    "EncoderDecoder",
    "EncoderInfo",
    "FeatureMaps",
    "IncompatiblePairError",
    "ModelConfig",
    "SegmentationModel",
    "Segmenter",
    "SequenceOutput",
    "Transcriber",
    "TranscriptionOptions",
    "Translator",
    "build_model",
    "create_model",
    "decode",
    "list_decoders",
    "list_encoders",
    "load_pipeline",
]
