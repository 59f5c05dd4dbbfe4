"""RNN decoders (additive attention and fixed context): cached decoding, masks, reorder, context vector."""

from __future__ import annotations

import pytest
import torch

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


@pytest.mark.parametrize(("cell", "attention"), VARIANTS)
def test_cached_steps_equal_teacher_forcing_and_recomputation(cell, attention):
    decoder, encoded = make_decoder(cell, attention), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    with torch.no_grad():
        full = decoder(tokens, encoded)
        cache, stepped = None, []
        for t in range(TOKENS):
            out = decoder.step(tokens[:, t : t + 1], encoded, cache)
            cache = out.cache
            stepped.append(out.logits)
            recomputed = decoder.step(tokens[:, : t + 1], encoded)
            torch.testing.assert_close(recomputed.logits[:, -1], out.logits[:, 0], atol=ATOL, rtol=0)
        chunked = decoder.step(tokens[:, 2:], encoded, decoder.step(tokens[:, :2], encoded).cache)
    assert full.shape == (BATCH, TOKENS, VOCAB)
    torch.testing.assert_close(torch.cat(stepped, dim=1), full, atol=ATOL, rtol=0)
    torch.testing.assert_close(chunked.logits, full[:, 2:], atol=ATOL, rtol=0)


@pytest.mark.parametrize(("cell", "attention"), VARIANTS)
def test_padded_memory_rows_do_not_change_outputs(cell, attention):
    decoder = make_decoder(cell, attention)
    short = make_encoded(batch=1, length=4, valid=(4,))
    garbage = torch.randn(1, 2, MEMORY_DIM) * 100
    padded = SequenceOutput(
        torch.cat([short.memory, garbage], 1), torch.cat([short.mask, torch.zeros(1, 2, dtype=bool)], 1)
    )
    tokens = torch.randint(0, VOCAB, (1, TOKENS))
    with torch.no_grad():
        torch.testing.assert_close(decoder(tokens, padded), decoder(tokens, short), atol=ATOL, rtol=0)


@pytest.mark.parametrize(("cell", "attention"), VARIANTS)
@pytest.mark.parametrize("index", [[2, 0, 0], [1, 2]], ids=["across-examples", "drop-rows"])
def test_reordered_cache_equals_running_the_reordered_batch(cell, attention, index):
    decoder, encoded = make_decoder(cell, attention), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    index = torch.tensor(index)
    with torch.no_grad():
        before = decoder.step(tokens[:, :2], encoded)
        after = decoder.step(tokens[index, 2:], encoded, before.cache.reorder(index))
        expected = decoder(tokens[index], rows(encoded, index))
    torch.testing.assert_close(after.logits, expected[:, 2:], atol=ATOL, rtol=0)


@pytest.mark.parametrize(("cell", "attention"), VARIANTS)
def test_rows_sharing_an_examples_memory_equal_the_repeated_memory(cell, attention):
    decoder, encoded, group = make_decoder(cell, attention), make_encoded(), 3
    tokens = torch.randint(0, VOCAB, (BATCH * group, TOKENS))
    with torch.no_grad():
        shared = decoder.step(tokens, encoded).logits
        expected = decoder(tokens, encoded.repeat_interleave(group))
    torch.testing.assert_close(shared, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_attention_weights_sum_to_one_over_valid_rows_and_zero_on_padding(cell):
    decoder, encoded = make_decoder(cell, "additive"), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    with torch.no_grad():
        first = decoder.step(tokens[:, :3], encoded, return_attention=True)
        second = decoder.step(tokens[:, 3:4], encoded, first.cache, return_attention=True)
        plain = decoder.step(tokens[:, :3], encoded)
    for out, new in ((first, 3), (second, 1)):
        assert out.attention.shape == (BATCH, new, MEMORY_LEN)
        torch.testing.assert_close(out.attention.sum(-1), torch.ones(BATCH, new))
        assert torch.all(out.attention.masked_select(~encoded.mask.unsqueeze(1)) == 0)
    assert plain.attention is None


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


@pytest.mark.parametrize(("cell", "attention"), VARIANTS)
def test_backward_reaches_every_parameter(cell, attention):
    decoder, encoded = make_decoder(cell, attention).train(), make_encoded()
    encoded.memory.requires_grad_(True)
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    logits = decoder(tokens, encoded)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    assert encoded.memory.grad is not None and encoded.memory.grad.abs().sum() > 0
    assert all(p.grad is not None for p in decoder.parameters())


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
    decoder, encoded = make_decoder("lstm", "additive"), make_encoded()
    with pytest.raises(InputError, match="batch size"):
        decoder.step(
            torch.zeros(BATCH, 1, dtype=torch.long),
            encoded,
            decoder.step(torch.zeros(1, 1, dtype=torch.long), rows(encoded, torch.tensor([0]))).cache,
        )
    with pytest.raises(InputError, match="memory must be"):
        decoder(torch.zeros(BATCH, 2, dtype=torch.long), SequenceOutput(torch.randn(BATCH, 5), encoded.mask))
