"""Registries of encoders and decoders: short entry points, looked up by name.

Each entry declares, before anything is built, what an encoder emits or what a
decoder requires, so that ``create_model`` can refuse a pair whose needs do not
meet and name the encoders that would fit.

This module imports nothing of the suite but its types: the built-in encoders and decoders
register themselves when their packages are imported, which ``multimodal_s2s.models`` does (and so the
first use of ``multimodal_s2s.create_model``, ``list_encoders`` or ``list_decoders``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multimodal_s2s.types import DecoderOutput, Emits, Modality


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    factory: Callable[..., Any]
    modality: Modality
    emits: frozenset[Emits]


@dataclass(frozen=True)
class DecoderEntry:
    """A decoder's declaration: what it needs of the encoder, what it makes and what it can show.

    Attributes:
        requires: what the encoder must emit.
        output: text (an EncoderDecoder) or dense (a SegmentationModel).
        attends: a text decoder whose steps return cross-attention weights over the memory
            (``StepOutput.attention``): heatmaps over an image, word timing by attention.
        class_attention: a dense decoder with ``class_attention(maps)``: per-class attention maps
            over its grid (the mask Transformer).
        makes_class_scores: a dense decoder whose features already are the per-class scores (built with
            ``num_classes``; the head after it only resizes): the mask Transformer.
    """

    name: str
    factory: Callable[..., Any]
    requires: frozenset[Emits]
    output: DecoderOutput
    attends: bool = False
    class_attention: bool = False
    makes_class_scores: bool = False


_ENCODERS: dict[str, EncoderEntry] = {}
_DECODERS: dict[str, DecoderEntry] = {}


class UnknownNameError(ValueError):
    """A registry lookup with a name that is not registered."""


class IncompatiblePairError(ValueError):
    """An encoder that does not emit what a decoder requires."""


def register_encoder(name: str, *, modality: Modality, emits: set[Emits]) -> Callable:
    """Register ``factory(**kwargs) -> Encoder`` under ``name``."""

    def decorate(factory: Callable) -> Callable:
        if name in _ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        _ENCODERS[name] = EncoderEntry(name, factory, Modality(modality), frozenset(emits))
        return factory

    return decorate


def register_decoder(
    name: str,
    *,
    requires: set[Emits],
    output: DecoderOutput | str,
    attends: bool = False,
    class_attention: bool = False,
    makes_class_scores: bool = False,
) -> Callable:
    """Register ``factory(encoder_info, *, vocab_size|num_classes, **kwargs) -> Decoder`` with what it can
    show (see DecoderEntry): text decoders take ``vocab_size``, dense ones ``num_classes`` only when they
    make class scores."""

    if output not in tuple(DecoderOutput):
        raise ValueError(f"decoder output must be 'text' or 'dense', not {output!r}")
    kind = DecoderOutput(output)
    dense_only = class_attention or makes_class_scores
    if (attends and kind != DecoderOutput.TEXT) or (dense_only and kind != DecoderOutput.DENSE):
        raise ValueError(
            f"decoder {name!r}: attends is for text decoders, class_attention and makes_class_scores for dense ones"
        )

    def decorate(factory: Callable) -> Callable:
        if name in _DECODERS:
            raise ValueError(f"decoder {name!r} is already registered")
        _DECODERS[name] = DecoderEntry(
            name, factory, frozenset(requires), kind, attends, class_attention, makes_class_scores
        )
        return factory

    return decorate


def _lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise UnknownNameError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(table))}")
    return table[name]


def encoder_entry(name: str) -> EncoderEntry:
    return _lookup(_ENCODERS, "encoder", name)


def decoder_entry(name: str) -> DecoderEntry:
    return _lookup(_DECODERS, "decoder", name)


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted names of the registered encoders, optionally of one modality."""
    return sorted(n for n, e in _ENCODERS.items() if modality is None or e.modality == modality)


def list_decoders() -> list[str]:
    """Sorted names of the registered decoders."""
    return sorted(_DECODERS)


def encoders_fitting(decoder_name: str) -> list[str]:
    """Names of the encoders that emit everything ``decoder_name`` requires."""
    needs = decoder_entry(decoder_name).requires
    return sorted(n for n, e in _ENCODERS.items() if needs <= e.emits)


def check_pair(encoder_name: str, decoder_name: str) -> None:
    """Raise IncompatiblePairError, in one sentence, when the encoder misses a decoder need."""
    missing = decoder_entry(decoder_name).requires - encoder_entry(encoder_name).emits
    if missing:
        names = ", ".join(sorted(m.value for m in missing))
        raise IncompatiblePairError(
            f"decoder {decoder_name!r} needs {names}, which encoder {encoder_name!r} does not emit; "
            f"encoders that fit: {', '.join(encoders_fitting(decoder_name))}"
        )
