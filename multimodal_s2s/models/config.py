"""A model's config: names and numbers, small enough to store inside a checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    """Everything ``create_model`` needs to rebuild a model.

    Exactly one of ``vocab_size`` (text out) and ``num_classes`` (dense out) is set.
    """

    encoder: str
    decoder: str
    encoder_args: dict[str, Any] = field(default_factory=dict)
    decoder_args: dict[str, Any] = field(default_factory=dict)
    vocab_size: int | None = None
    num_classes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**data)
