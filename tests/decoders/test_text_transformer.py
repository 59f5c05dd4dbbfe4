"""Transformer text decoder: cached decoding equals teacher forcing and recomputation, masks, reorder."""

from __future__ import annotations

import pytest
import torch

from multimodal_s2s.decoders.text_transformer import TransformerDecoder, transformer_tiny
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.attention import KV_CAPACITY_MARGIN, KVCache
from multimodal_s2s.types import Emits, EncoderInfo, Modality, SequenceOutput

VOCAB, MEMORY_DIM, BATCH, MEMORY_LEN, TOKENS = 37, 24, 3, 7, 6
ATOL = 1e-5


def make_encoded(batch: int = BATCH, length: int = MEMORY_LEN, valid: tuple[int, ...] = (7, 4, 2)) -> SequenceOutput:
    memory = torch.randn(batch, length, MEMORY_DIM)
    mask = torch.arange(length).unsqueeze(0) < torch.tensor(valid[:batch]).unsqueeze(1)
    return SequenceOutput(memory, mask)


def make_decoder(modality: Modality = Modality.TEXT, **kwargs) -> TransformerDecoder:
    info = EncoderInfo(modality=modality, emits=frozenset({Emits.SEQUENCE}), out_dim=MEMORY_DIM)
    args = dict(d_model=32, num_layers=2, num_heads=4, ff_dim=64, dropout=0.1) | kwargs
    return TransformerDecoder(info, VOCAB, **args).eval()


def rows(encoded: SequenceOutput, index: torch.Tensor) -> SequenceOutput:
    return SequenceOutput(encoded.memory[index], encoded.mask[index])


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("modality", [Modality.TEXT, Modality.IMAGE])
def test_cached_steps_equal_teacher_forcing(modality):
    decoder, encoded = make_decoder(modality), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    with torch.no_grad():
        full = decoder(tokens, encoded)
        cache, stepped = None, []
        for t in range(TOKENS):
            out = decoder.step(tokens[:, t : t + 1], encoded, cache)
            cache = out.cache
            stepped.append(out.logits)
    assert full.shape == (BATCH, TOKENS, VOCAB)
    torch.testing.assert_close(torch.cat(stepped, dim=1), full, atol=ATOL, rtol=0)
    assert cache.length == TOKENS


def test_uncached_recomputation_equals_cached_step():
    decoder, encoded = make_decoder(), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    with torch.no_grad():
        cache = None
        for t in range(TOKENS):
            cached = decoder.step(tokens[:, t : t + 1], encoded, cache)
            cache = cached.cache
            recomputed = decoder.step(tokens[:, : t + 1], encoded)
            torch.testing.assert_close(recomputed.logits[:, -1], cached.logits[:, 0], atol=ATOL, rtol=0)


def test_chunks_of_several_tokens_after_a_prefix():
    """Multi-token steps after cached positions need the causal mask offset by the past."""
    decoder, encoded = make_decoder(), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    with torch.no_grad():
        full = decoder(tokens, encoded)
        first = decoder.step(tokens[:, :2], encoded)
        second = decoder.step(tokens[:, 2:5], encoded, first.cache)
        third = decoder.step(tokens[:, 5:], encoded, second.cache)
    torch.testing.assert_close(torch.cat([first.logits, second.logits, third.logits], 1), full, atol=ATOL, rtol=0)


def test_cache_grows_past_its_capacity():
    decoder, encoded = make_decoder(num_layers=1), make_encoded()
    length = KV_CAPACITY_MARGIN + 3
    tokens = torch.randint(0, VOCAB, (BATCH, length))
    with torch.no_grad():
        first = decoder.step(tokens[:, :1], encoded)
        capacity = first.cache.self_kv.capacity
        rest = decoder.step(tokens[:, 1:], encoded, first.cache)
        full = decoder(tokens, encoded)
    assert rest.cache.self_kv.capacity > capacity
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), full, atol=ATOL, rtol=0)


def test_padded_memory_rows_do_not_change_outputs():
    decoder = make_decoder()
    short = make_encoded(batch=1, length=4, valid=(4,))
    garbage = torch.randn(1, 3, MEMORY_DIM) * 100
    padded = SequenceOutput(
        torch.cat([short.memory, garbage], 1), torch.cat([short.mask, torch.zeros(1, 3, dtype=bool)], 1)
    )
    tokens = torch.randint(0, VOCAB, (1, TOKENS))
    with torch.no_grad():
        torch.testing.assert_close(decoder(tokens, padded), decoder(tokens, short), atol=ATOL, rtol=0)
        step_short = decoder.step(tokens, short, return_attention=True)
        step_padded = decoder.step(tokens, padded, return_attention=True)
    torch.testing.assert_close(step_padded.logits, step_short.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(step_padded.attention[..., :4], step_short.attention, atol=ATOL, rtol=0)


def test_attention_weights_sum_to_one_over_valid_rows_and_zero_on_padding():
    decoder, encoded = make_decoder(), make_encoded()
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
    torch.testing.assert_close(first.logits, plain.logits, atol=ATOL, rtol=0)  # the explicit path agrees with SDPA


@pytest.mark.parametrize("index", [[2, 0, 0], [1, 2]], ids=["across-examples", "drop-rows"])
def test_reordered_cache_equals_running_the_reordered_batch(index):
    decoder, encoded = make_decoder(), make_encoded()
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    index = torch.tensor(index)
    with torch.no_grad():
        before = decoder.step(tokens[:, :3], encoded)
        reordered = before.cache.reorder(index)
        after = decoder.step(tokens[index, 3:], encoded, reordered)
        expected = decoder(tokens[index], rows(encoded, index))
        untouched = decoder.step(tokens[:, 3:], encoded, before.cache)  # the original cache still works
    torch.testing.assert_close(after.logits, expected[:, 3:], atol=ATOL, rtol=0)
    torch.testing.assert_close(untouched.logits, decoder(tokens, encoded)[:, 3:], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "index", [[1, 0, 2, 2, 5, 4], [2, 0, 0, 5, 1, 3], [4, 1]], ids=["within-examples", "across-examples", "drop-rows"]
)
def test_rows_sharing_an_examples_memory_equal_the_repeated_memory(index):
    """Beam search steps g rows per example over unrepeated memory; any later reorder stays right."""
    decoder, encoded, group = make_decoder(), make_encoded(), 2
    tokens = torch.randint(0, VOCAB, (BATCH * group, TOKENS))
    repeated = encoded.repeat_interleave(group)
    index = torch.tensor(index)
    with torch.no_grad():
        shared = decoder.step(tokens[:, :3], encoded, return_attention=True)
        copied = decoder.step(tokens[:, :3], repeated, return_attention=True)
        after = decoder.step(tokens[index, 3:], encoded, shared.cache.reorder(index), return_attention=True)
        expected = decoder(tokens[index], rows(repeated, index))
    assert shared.cache.cross_kv[0].shape[1] == BATCH  # the memory's keys/values are not repeated
    torch.testing.assert_close(shared.logits, copied.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(shared.attention, copied.attention, atol=ATOL, rtol=0)
    torch.testing.assert_close(after.logits, expected[:, 3:], atol=ATOL, rtol=0)


def test_token_rows_must_be_a_multiple_of_the_examples():
    with pytest.raises(InputError, match="not a multiple of the 3 examples"):
        make_decoder().step(torch.randint(0, VOCAB, (4, 2)), make_encoded())
    empty = SequenceOutput(torch.zeros(0, MEMORY_LEN, MEMORY_DIM), torch.zeros(0, MEMORY_LEN, dtype=torch.bool))
    with pytest.raises(InputError, match="encoded memory is empty"):
        make_decoder().step(torch.randint(0, VOCAB, (2, 2)), empty)


def test_kv_cache_reorder_keeps_length_and_capacity_and_selects_rows():
    cache = KVCache.allocate(num_layers=2, batch=3, num_heads=2, head_dim=4, capacity=5, like=torch.empty(0))
    for buffer in cache.buffers:
        buffer.normal_()
    cache.advance(5)
    picked = cache.reorder(torch.tensor([2, 2]))
    assert picked.length == 5 and picked.capacity == cache.capacity and len(picked.buffers) == 2
    for new, old in zip(picked.buffers, cache.buffers, strict=True):
        assert new.shape[1] == 2
        torch.testing.assert_close(new[:, 0, :, :5], old[:, 2, :, :5])
        torch.testing.assert_close(new[:, 1, :, :5], old[:, 2, :, :5])


def test_tied_embeddings_share_the_parameter():
    tied, untied = make_decoder(), make_decoder(tie_embeddings=False)
    assert tied.output.weight is tied.embedding.weight
    assert untied.output.weight is not untied.embedding.weight
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == VOCAB * 32


def test_memory_is_projected_when_widths_differ():
    assert isinstance(make_decoder(d_model=32).memory_projection, torch.nn.Linear)
    assert isinstance(make_decoder(d_model=MEMORY_DIM, num_heads=4).memory_projection, torch.nn.Identity)


def test_backward_reaches_every_parameter():
    decoder, encoded = make_decoder().train(), make_encoded()
    encoded.memory.requires_grad_(True)
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    logits = decoder(tokens, encoded)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    assert encoded.memory.grad is not None and encoded.memory.grad.abs().sum() > 0
    assert all(p.grad is not None for p in decoder.parameters())


def test_registered_presets():
    from multimodal_s2s.registry import decoder_entry

    info = EncoderInfo(modality=Modality.IMAGE, emits=frozenset({Emits.SEQUENCE}), out_dim=MEMORY_DIM)
    for name, width, depth in [("transformer_tiny", 64, 2), ("transformer", 256, 4)]:
        entry = decoder_entry(name)
        assert entry.requires == {Emits.SEQUENCE} and entry.output == "text"
        decoder = entry.factory(info, vocab_size=VOCAB)
        assert decoder.embedding.weight.shape == (VOCAB, width) and len(decoder.blocks) == depth
    assert {"transformer_small", "transformer_base"} <= set(__import__("multimodal_s2s").list_decoders())


def test_bad_inputs_raise_one_clear_error():
    decoder, encoded = make_decoder(), make_encoded()
    with pytest.raises(InputError, match="integer ids"):
        decoder(torch.rand(BATCH, 4), encoded)
    with pytest.raises(InputError, match="batch size"):
        decoder(torch.zeros(BATCH + 1, 4, dtype=torch.long), encoded)
    with pytest.raises(InputError, match="non-empty"):
        decoder.step(torch.zeros(BATCH, 0, dtype=torch.long), encoded)
    with pytest.raises(InputError, match=r"\[0, 37\)"):
        decoder(torch.full((BATCH, 2), VOCAB), encoded)
    with pytest.raises(InputError, match="memory must be"):
        decoder(torch.zeros(BATCH, 2, dtype=torch.long), SequenceOutput(torch.randn(BATCH, 5, 3), encoded.mask))
    empty_row = encoded.mask.clone()
    empty_row[0] = False
    with pytest.raises(InputError, match="no valid memory row"):
        decoder.step(torch.zeros(BATCH, 1, dtype=torch.long), SequenceOutput(encoded.memory, empty_row))
    with pytest.raises(ValueError, match="divisible"):
        make_decoder(d_model=30)


def test_preset_factory_builds_a_working_decoder():
    info = EncoderInfo(modality=Modality.AUDIO, emits=frozenset({Emits.SEQUENCE}), out_dim=MEMORY_DIM)
    decoder, encoded = transformer_tiny(info, vocab_size=VOCAB, dropout=0.0).eval(), make_encoded()
    with torch.no_grad():
        out = decoder.step(torch.ones(BATCH, 1, dtype=torch.long), encoded)
    assert out.logits.shape == (BATCH, 1, VOCAB) and torch.isfinite(out.logits).all()
