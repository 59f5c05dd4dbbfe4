"""RecurrentSteps (an nn.LSTM / nn.GRU unrolled one position at a time on its own weights) gives what the
module gives on the whole sequence, with float32 states under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from multimodal_s2s.layers.recurrent import RecurrentSteps

BATCH, LENGTH, KNOWN, FED, HIDDEN = 3, 7, 5, 4, 6


def _run_steps(rnn: nn.RNNBase, known: torch.Tensor, fed: torch.Tensor, state) -> tuple[torch.Tensor, object]:
    run_step, outputs = RecurrentSteps(rnn, known), []
    for t in range(known.shape[1]):
        output, state = run_step(t, fed[:, t], state)
        outputs.append(output)
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
def test_steps_equal_the_module_on_the_whole_sequence(cell, layers):
    torch.manual_seed(0)
    rnn = cell(KNOWN + FED, HIDDEN, layers, batch_first=True, dropout=0.3 if layers > 1 else 0.0).eval()
    known, fed = torch.randn(BATCH, LENGTH, KNOWN), torch.randn(BATCH, LENGTH, FED)
    hidden = torch.randn(layers, BATCH, HIDDEN)
    state = (hidden, torch.randn(layers, BATCH, HIDDEN)) if cell is nn.LSTM else hidden
    expected, expected_state = rnn(torch.cat([known, fed], dim=-1), state)
    outputs, final_state = _run_steps(rnn, known, fed, state)
    torch.testing.assert_close(outputs, expected, atol=1e-6, rtol=1e-5)
    for actual, wanted in zip(torch.utils._pytree.tree_leaves(final_state),
                              torch.utils._pytree.tree_leaves(expected_state), strict=True):
        torch.testing.assert_close(actual, wanted, atol=1e-6, rtol=1e-5)


def test_states_stay_float32_under_bf16_autocast_and_gradients_reach_every_weight():
    torch.manual_seed(0)
    rnn = nn.LSTM(KNOWN + FED, HIDDEN, 2, batch_first=True)
    known, fed = torch.randn(BATCH, LENGTH, KNOWN), torch.randn(BATCH, LENGTH, FED)
    state = (torch.zeros(2, BATCH, HIDDEN), torch.zeros(2, BATCH, HIDDEN))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs, (hidden, cell) = _run_steps(rnn, known, fed, state)
    assert outputs.dtype == hidden.dtype == cell.dtype == torch.float32
    expected, _ = rnn(torch.cat([known, fed], dim=-1), state)
    torch.testing.assert_close(outputs, expected, atol=0.05, rtol=0)  # bf16 products, float32 states
    outputs.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rnn.parameters())
