"""Token ids in and out of the models: source texts encoded, id lists and variable-length tensors padded
into batches (the same in training and inference)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from multimodal_s2s.tokenizers import Tokenizer
from multimodal_s2s.types import PAD_ID


def encode_source(tokenizer: Tokenizer, text: str) -> list[int]:
    """Source text -> encoder input ids, BOS ... EOS (the same in training and in translation)."""
    return tokenizer.encode(text, add_special=True)


def pad_token_ids(sequences: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> Tensor:
    """Id lists of any lengths -> (B, L_max) long, padded with ``pad_id`` on the right."""
    if not sequences:
        raise ValueError("cannot pad an empty list of token sequences")
    padded = torch.full((len(sequences), max(len(s) for s in sequences)), pad_id, dtype=torch.long)
    for row, ids in enumerate(sequences):
        padded[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return padded


def pad_last_axis(tensors: Sequence[Tensor], pad_value: float) -> tuple[Tensor, Tensor]:
    """Tensors equal but for the last axis -> (B, ..., T_max) padded with ``pad_value``, lengths (B,)."""
    lengths = torch.tensor([t.shape[-1] for t in tensors], dtype=torch.long)
    longest = int(lengths.max())
    padded = [F.pad(t, (0, longest - t.shape[-1]), value=pad_value) for t in tensors]
    return torch.stack(padded), lengths
