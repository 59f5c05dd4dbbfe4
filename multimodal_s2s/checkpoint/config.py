"""A model's config: names and numbers, small enough to store inside a checkpoint (models.build_model reads it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

#: The argument of an encoder or decoder that names a weights file to start from.
PRETRAINED_KEY = "pretrained_path"
#: The arguments that make an encoder load weights when it is built: a file, or weights by name (``pretrained``).
WEIGHTS_KEYS = (PRETRAINED_KEY, "pretrained")


@dataclass
class ModelConfig:
    """Everything ``create_model`` needs to rebuild a model.

    Exactly one of ``vocab_size`` (text out) and ``num_classes`` (dense out) is set. ``shared_embeddings``:
    a text encoder and the decoder read one token embedding table (a joint source/target vocabulary, as in
    Marian and the tiny Multi30k Transformers); with a tied output it is also the output projection.
    """

    encoder: str
    decoder: str
    encoder_args: dict[str, Any] = field(default_factory=dict)
    decoder_args: dict[str, Any] = field(default_factory=dict)
    vocab_size: int | None = None
    num_classes: int | None = None
    shared_embeddings: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def without_weights_files(self) -> ModelConfig:
        """This config with no ``pretrained_path`` or ``pretrained``: to rebuild a model whose weights come from a
        checkpoint (the files it was started from need not exist any more, nor be downloaded)."""
        encoder_args, decoder_args = (_without_weights_file(args) for args in (self.encoder_args, self.decoder_args))
        return replace(self, encoder_args=encoder_args, decoder_args=decoder_args)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


def _without_weights_file(args: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in args.items() if key not in WEIGHTS_KEYS}
