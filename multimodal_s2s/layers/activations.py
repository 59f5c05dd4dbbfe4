"""Feed-forward activations by name, as model configs (and imported checkpoints) spell them."""

from __future__ import annotations

from torch import nn

#: name -> module class; "swish" is SiLU (Marian's name for it), "gelu" the exact erf form.
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU}


def activation(name: str) -> nn.Module:
    """A new activation module for ``name``; ValueError listing the known names otherwise."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()
