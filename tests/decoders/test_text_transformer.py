"""Transformer text decoder: cached decoding equals teacher forcing and recomputation, masks, reorder."""

from __future__ import annotations

import pytest
import torch
from decoder_contract import TextDecoderContract

from multimodal_s2s.decoders.text_transformer import TransformerDecoder, transformer_tiny
from multimodal_s2s.errors import InputError
from multimodal_s2s.layers.attention import KV_CAPACITY_MARGIN, KVCache
from multimodal_s2s.types import Emits, EncoderInfo, Modality, SequenceOutput

VOCAB, MEMORY_DIM, BATCH, MEMORY_LEN, TOKENS = 37, 24, 3, 7, 6
ATOL = 1e-5
SIZES = {"d_model": 32, "num_layers": 2, "num_heads": 4, "ff_dim": 64, "dropout": 0.1}


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


class TestTransformerDecoderContract(TextDecoderContract):
    VOCAB, MEMORY_DIM, BATCH, MEMORY_LEN, TOKENS, VALID = VOCAB, MEMORY_DIM, BATCH, MEMORY_LEN, TOKENS, (7, 4, 2)
    DECODERS = {f"{m.value}-memory": ("transformer", {"modality": m, **SIZES}) for m in (Modality.TEXT, Modality.IMAGE)}
    #: whisper's layout (interop.whisper): learned positions, no embedding scale, a prompt read after BOS.
    DECODERS["whisper-layout"] = ("transformer", {**SIZES, "positions": "learned", "max_positions": 64,
                                                  "scale_embedding": False, "prompt": [5, 6, 7]})

    def bad_inputs(self, decoder, encoded):
        empty_row = encoded.mask.clone()
        empty_row[0] = False
        empty = SequenceOutput(torch.zeros(0, MEMORY_LEN, MEMORY_DIM), torch.zeros(0, MEMORY_LEN, dtype=torch.bool))
        return [
            (lambda: decoder(torch.rand(BATCH, 4), encoded), "integer ids"),
            (lambda: decoder(torch.zeros(BATCH + 1, 4, dtype=torch.long), encoded), "batch size"),
            (lambda: decoder.step(torch.zeros(BATCH, 0, dtype=torch.long), encoded), "non-empty"),
            (lambda: decoder(torch.full((BATCH, 2), VOCAB), encoded), r"\[0, 37\)"),
            (lambda: decoder.step(torch.ones(BATCH, 1, dtype=torch.long), SequenceOutput(encoded.memory, empty_row)),
             "no valid memory row"),
            (lambda: decoder.step(torch.randint(0, VOCAB, (2, 2)), empty), "encoded memory is empty"),
        ]


def test_rows_sharing_an_examples_memory_do_not_repeat_its_keys_and_values():
    decoder, encoded = make_decoder(), make_encoded()
    with torch.no_grad():
        shared = decoder.step(torch.randint(0, VOCAB, (BATCH * 2, 3)), encoded)
    assert shared.cache.cross_kv[0].shape[1] == BATCH  # the memory's keys/values are not repeated


def test_width_not_divisible_by_the_heads():
    with pytest.raises(ValueError, match="divisible"):
        make_decoder(d_model=30)


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


def test_registered_presets():
    from multimodal_s2s.registry import decoder_entry

    info = EncoderInfo(modality=Modality.IMAGE, emits=frozenset({Emits.SEQUENCE}), out_dim=MEMORY_DIM)
    for name, width, depth in [("transformer_tiny", 64, 2), ("transformer", 256, 4)]:
        entry = decoder_entry(name)
        assert entry.requires == {Emits.SEQUENCE} and entry.output == "text"
        decoder = entry.factory(info, vocab_size=VOCAB)
        assert decoder.embedding.weight.shape == (VOCAB, width) and len(decoder.blocks) == depth
    assert {"transformer_small", "transformer_base"} <= set(__import__("multimodal_s2s").list_decoders())


def test_preset_factory_builds_a_working_decoder():
    info = EncoderInfo(modality=Modality.AUDIO, emits=frozenset({Emits.SEQUENCE}), out_dim=MEMORY_DIM)
    decoder, encoded = transformer_tiny(info, vocab_size=VOCAB, dropout=0.0).eval(), make_encoded()
    with torch.no_grad():
        out = decoder.step(torch.ones(BATCH, 1, dtype=torch.long), encoded)
    assert out.logits.shape == (BATCH, 1, VOCAB) and torch.isfinite(out.logits).all()


def test_prompt_is_read_after_bos_and_its_outputs_dropped():
    """tokens [BOS, a, b] with prompt [p, q] give the logits of [BOS, p, q, a, b] at q, a, b."""
    prompted = make_decoder(positions="learned", max_positions=16, prompt=[5, 6])
    plain = make_decoder(positions="learned", max_positions=16)
    plain.load_state_dict(prompted.state_dict())
    encoded, tokens = make_encoded(), torch.randint(4, VOCAB, (BATCH, 3))
    with torch.no_grad():
        full = plain(torch.cat([tokens[:, :1], torch.tensor([[5, 6]] * BATCH), tokens[:, 1:]], 1), encoded)
        torch.testing.assert_close(prompted(tokens, encoded), full[:, 2:], atol=ATOL, rtol=0)
        stepped = prompted.step(tokens[:, :1], encoded, return_attention=True)
        assert stepped.logits.shape == (BATCH, 1, VOCAB) and stepped.attention.shape[1] == 1
        assert stepped.cache.length == 3  # BOS and the prompt


def test_learned_positions_stop_at_their_table():
    decoder = make_decoder(positions="learned", max_positions=4, prompt=[5])
    with pytest.raises(InputError, match="positions up to 5, the learned table has 4"):
        decoder(torch.ones(BATCH, 4, dtype=torch.long), make_encoded())
    with pytest.raises(ValueError, match="positions must be one of"):
        make_decoder(positions="rotary")
    with pytest.raises(ValueError, match="prompt ids"):
        make_decoder(prompt=[VOCAB])
