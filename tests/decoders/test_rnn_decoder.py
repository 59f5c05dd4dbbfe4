"""RNN decoders (additive attention and fixed context): cached decoding, masks, reorder, context vector."""

from __future__ import annotations

import pytest
import torch
from decoder_contract import TextDecoderContract

from multimodal_s2s.decoders.rnn_attention import RNNDecoder
from multimodal_s2s.errors import InputError
from multimodal_s2s.types import Emits, EncoderInfo, Modality, SequenceOutput

VOCAB, MEMORY_DIM, STATE_DIM, BATCH, MEMORY_LEN, TOKENS = 29, 12, 10, 3, 6, 5
ATOL = 1e-5
VARIANTS = [(cell, attention) for cell in ("lstm", "gru") for attention in ("additive", "none")]


def make_encoded(batch: int = BATCH, length: int = MEMORY_LEN, valid: tuple[int, ...] = (6, 3, 1)) -> SequenceOutput:
    memory = torch.randn(batch, length, MEMORY_DIM)
    mask = torch.arange(length).unsqueeze(0) < torch.tensor(valid[:batch]).unsqueeze(1)
    return SequenceOutput(memory, mask)


def make_decoder(cell: str, attention: str, state_dim: int | None = None, **kwargs) -> RNNDecoder:
    emits = {Emits.SEQUENCE} if state_dim is None else {Emits.SEQUENCE, Emits.FINAL_STATE}
    info = EncoderInfo(modality=Modality.TEXT, emits=frozenset(emits), out_dim=MEMORY_DIM, state_dim=state_dim)
    args = dict(embed_dim=8, hidden_size=16, num_layers=2, dropout=0.1) | kwargs
    return RNNDecoder(info, VOCAB, cell=cell, attention=attention, **args).eval()


def rows(encoded: SequenceOutput, index: torch.Tensor) -> SequenceOutput:
    state = None if encoded.final_state is None else encoded.final_state[index]
    return SequenceOutput(encoded.memory[index], encoded.mask[index], state)


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


class TestRNNDecoderContract(TextDecoderContract):
    VOCAB, MEMORY_DIM, BATCH, MEMORY_LEN, TOKENS, VALID = VOCAB, MEMORY_DIM, BATCH, MEMORY_LEN, TOKENS, (6, 3, 1)
    DECODERS = {
        f"{cell}-{attention}": (
            "rnn_attention" if attention == "additive" else "rnn",
            {"cell": cell, "embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.1},
        )
        for cell, attention in VARIANTS
    }

    def bad_inputs(self, decoder, encoded):
        one_row_cache = decoder.step(torch.zeros(1, 1, dtype=torch.long), rows(encoded, torch.tensor([0]))).cache
        return [(lambda: decoder.step(torch.zeros(BATCH, 1, dtype=torch.long), encoded, one_row_cache), "batch size")]


def test_fixed_context_decoder_has_no_attention_and_ignores_memory_beyond_its_mean():
    decoder, encoded = make_decoder("gru", "none"), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    # the same masked mean from other rows: shift each valid row by a vector that sums to zero over rows
    shifted = encoded.memory.clone()
    shifted[0, 0] += 1.0
    shifted[0, 1] -= 1.0
    with torch.no_grad():
        out = decoder.step(tokens, encoded, return_attention=True)
        same_mean = decoder(tokens, SequenceOutput(shifted, encoded.mask))
    assert out.attention is None and decoder.attention is None
    torch.testing.assert_close(same_mean, out.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_initial_state_comes_from_the_encoder_final_state(attention):
    decoder = make_decoder("lstm", attention, state_dim=STATE_DIM)
    encoded = make_encoded()
    encoded.final_state = torch.randn(BATCH, STATE_DIM)
    other = SequenceOutput(encoded.memory, encoded.mask, torch.randn(BATCH, STATE_DIM))
    tokens = torch.randint(0, VOCAB, (BATCH, 2))
    with torch.no_grad():
        assert not torch.allclose(decoder(tokens, encoded), decoder(tokens, other))
        cache = decoder.step(tokens, encoded).cache
    assert cache.hidden.shape == (2, BATCH, 16) and cache.cell.shape == (2, BATCH, 16)
    with pytest.raises(InputError, match=f"context vector must be \\(B, {STATE_DIM}\\)"):
        decoder(tokens, make_encoded())  # no final state: the memory mean has the wrong width


def test_registered_names_and_bad_arguments():
    from multimodal_s2s.registry import decoder_entry

    info = EncoderInfo(modality=Modality.AUDIO, emits=frozenset({Emits.SEQUENCE}), out_dim=MEMORY_DIM)
    for name, has_attention in [("rnn_attention", True), ("rnn", False)]:
        entry = decoder_entry(name)
        assert entry.requires == {Emits.SEQUENCE} and entry.output == "text"
        decoder = entry.factory(info, vocab_size=VOCAB, cell="gru", embed_dim=8, hidden_size=16)
        assert isinstance(decoder.rnn, torch.nn.GRU) and (decoder.attention is not None) == has_attention
    with pytest.raises(ValueError, match="unknown RNN cell"):
        make_decoder("rnn_tanh", "additive")
    with pytest.raises(ValueError, match="unknown attention"):
        make_decoder("lstm", "dot")
