"""TextRNNEncoder: LSTM and GRU, padding invariance, reversed sources, final state, registry entries."""

from __future__ import annotations

import pytest
import torch
from encoder_contract import TokenEncoderContract

from multimodal_s2s.encoders.text_lstm import TextRNNEncoder, reverse_valid_tokens
from multimodal_s2s.registry import encoder_entry, list_encoders
from multimodal_s2s.types import Emits, Modality

VOCAB = 50
CELLS = ("lstm", "gru")


def _encoder(cell: str, **overrides) -> TextRNNEncoder:
    torch.manual_seed(0)
    return encoder_entry(f"text_{cell}_tiny").factory(vocab_size=VOCAB, **overrides).eval()


def test_registered_names_and_sizes():
    names = {f"text_{cell}_{size}" for cell in CELLS for size in ("tiny", "small", "base")}
    assert names <= set(list_encoders(Modality.TEXT))
    for name in names:
        assert encoder_entry(name).emits == {Emits.SEQUENCE, Emits.FINAL_STATE}
    small = encoder_entry("text_gru_small").factory(vocab_size=VOCAB)
    assert isinstance(small.rnn, torch.nn.GRU) and small.rnn.num_layers == 2 and small.info.out_dim == 512
    with pytest.raises(TypeError, match="vocab_size"):
        encoder_entry("text_lstm_tiny").factory()


class TestTextRNNEncoderContract(TokenEncoderContract):
    VOCAB = VOCAB
    ATOL, RTOL = 1e-6, 0
    ENCODERS = {
        f"{cell}-{layout}": (f"text_{cell}_tiny", {"vocab_size": VOCAB, **args})
        for cell in CELLS
        for layout, args in [
            ("bidirectional", {"num_layers": 2}),
            ("unidirectional", {"num_layers": 2, "bidirectional": False}),
            ("reversed", {"reverse_source": True}),
        ]
    }

    def bad_inputs(self, name, args):
        return [
            (torch.tensor([[1, VOCAB]]), None, "0..49"),
            (torch.tensor([[1, 2]]), torch.tensor([3]), "lengths"),
        ]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_width_doubles_when_bidirectional(cell, bidirectional):
    encoder = _encoder(cell, bidirectional=bidirectional, num_layers=2)
    out = encoder.encode_sequence(torch.randint(4, VOCAB, (3, 7)), torch.tensor([7, 3, 1]))
    width = 32 * (2 if bidirectional else 1)
    assert encoder.info.out_dim == encoder.info.state_dim == width
    assert out.memory.shape == (3, 7, width) and out.final_state.shape == (3, width)


def test_reverse_valid_tokens_keeps_padding():
    tokens = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    reversed_tokens = reverse_valid_tokens(tokens, torch.tensor([3, 5]))
    assert reversed_tokens.tolist() == [[7, 6, 5, 0, 0], [12, 11, 10, 9, 8]]
    assert torch.equal(reverse_valid_tokens(reversed_tokens, torch.tensor([3, 5])), tokens)


@pytest.mark.parametrize("cell", CELLS)
def test_reverse_source_reads_backwards_in_source_order(cell):
    forward_only = _encoder(cell, bidirectional=False)
    backward_reader = _encoder(cell, bidirectional=False, reverse_source=True)
    tokens = torch.tensor([[5, 6, 7, 8]])
    flipped = torch.tensor([[8, 7, 6, 5]])
    reversed_out = backward_reader.encode_sequence(tokens)
    plain_on_flipped = forward_only.encode_sequence(flipped)
    # Same weights (same seed): reading reversed == reading the flipped sentence, with rows put back in source order.
    torch.testing.assert_close(reversed_out.memory, plain_on_flipped.memory.flip(1))
    torch.testing.assert_close(reversed_out.final_state, plain_on_flipped.final_state)
    assert not torch.allclose(reversed_out.final_state, forward_only.encode_sequence(tokens).final_state)


@pytest.mark.parametrize("cell", CELLS)
def test_final_state_is_last_layer_both_directions(cell):
    encoder = _encoder(cell, num_layers=2)
    out = encoder.encode_sequence(torch.randint(4, VOCAB, (2, 6)), torch.tensor([6, 4]))
    hidden = 32
    # Forward direction ends at the last valid token; backward direction ends at the first token.
    torch.testing.assert_close(out.final_state[0, :hidden], out.memory[0, 5, :hidden])
    torch.testing.assert_close(out.final_state[1, :hidden], out.memory[1, 3, :hidden])
    torch.testing.assert_close(out.final_state[:, hidden:], out.memory[:, 0, hidden:])


def test_bad_cell():
    with pytest.raises(ValueError, match="cell must be one of lstm, gru"):
        TextRNNEncoder(VOCAB, cell="rnn")
