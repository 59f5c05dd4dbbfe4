"""Batches for text-out tasks: targets tokenized (BOS ... EOS) and padded, references kept as text.

A text-out dataset yields examples as dicts:
    inputs: Tensor, the same shape in every example (an image (3, H, W)), or variable along the last
        axis (a log-mel (n_mels, frames), source ids (L,)) when the collator pads them
    target: str, the text to learn with teacher forcing
    references: list[str], every correct text (for the metrics)
    id: str, where the example came from (a file, a source sentence, a generated scene)
and ``TextTargetCollator`` turns a list of them into the batch that ``lit.seq2seq.Seq2SeqModule`` reads:
``inputs``, ``lengths`` (None for fixed-size inputs), ``tokens`` (B, L) long, ``references``, ``ids``.
"""

from __future__ import annotations

from typing import Any

import torch

from multimodal_s2s.preprocessing.tokens import pad_last_axis, pad_token_ids
from multimodal_s2s.tokenizers import Tokenizer
from multimodal_s2s.types import BOS_ID, EOS_ID


def encode_target(tokenizer: Tokenizer, text: str, max_tokens: int | None = None) -> list[int]:
    """Text -> BOS, at most ``max_tokens`` ids of the text (None: all), EOS."""
    ids = tokenizer.encode(text)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    return [BOS_ID, *ids, EOS_ID]


class TextTargetCollator:
    """Examples (see the module docstring) -> one batch dict.

    Args:
        tokenizer: encodes the targets.
        max_target_tokens: longer targets are cut to this many ids (before EOS); None keeps all.
        input_pad_value: None stacks inputs of one shape (``lengths`` None); a value pads inputs
            along their last axis with it and gives their ``lengths``.
    """

    def __init__(
        self, tokenizer: Tokenizer, max_target_tokens: int | None = None, input_pad_value: float | None = None
    ):
        if max_target_tokens is not None and max_target_tokens < 1:
            raise ValueError(f"max_target_tokens must be >= 1 or None, got {max_target_tokens}")
        self.tokenizer = tokenizer
        self.max_target_tokens = max_target_tokens
        self.input_pad_value = input_pad_value

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        inputs = [example["inputs"] for example in examples]
        if self.input_pad_value is None:
            batch_inputs, lengths = torch.stack(inputs), None  # (B, ...)
        else:
            batch_inputs, lengths = pad_last_axis(inputs, self.input_pad_value)
        targets = [encode_target(self.tokenizer, e["target"], self.max_target_tokens) for e in examples]
        return {
            "inputs": batch_inputs,
            "lengths": lengths,
            "tokens": pad_token_ids(targets),  # (B, L)
            "references": [list(example["references"]) for example in examples],
            "ids": [example["id"] for example in examples],
        }
