"""nn.LSTM / nn.GRU under CPU autocast: oneDNN has bfloat16 recurrent kernels only on CPUs with bf16
instructions, and elsewhere ``--trainer.precision bf16-mixed`` failed inside torch ("could not create a
primitive descriptor for the LSTM forward propagation primitive"). ``run_recurrent`` runs them in float32
there, as the loss and the audio front end run; on a GPU, autocast's own choice stands."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


def run_recurrent(rnn: nn.RNNBase, inputs: Any, state: RecurrentState = None) -> tuple[Any, RecurrentState]:
    """``rnn(inputs, state)``; under CPU autocast, in float32 with autocast off. ``inputs``: (B, L, I) or a
    PackedSequence; ``state``: h (layers, B, H), (h, c) for an LSTM, or None."""
    if not torch.is_autocast_enabled("cpu") or rnn.weight_ih_l0.device.type != "cpu":
        return rnn(inputs, state)
    with torch.autocast("cpu", enabled=False):
        return rnn(inputs.float(), _float_state(state))


def _float_state(state: RecurrentState) -> RecurrentState:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(part.float() for part in state)
    return state.float()
