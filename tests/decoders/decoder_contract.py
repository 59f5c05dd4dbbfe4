"""The checks every decoder family passes, written once: a family's test file subclasses ``TextDecoderContract``
or ``DenseDecoderContract`` as ``Test<Family>Contract`` and lists its small decoders; pytest collects the
subclasses, never these bases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import multimodal_s2s
from multimodal_s2s.errors import InputError
from multimodal_s2s.registry import decoder_entry
from multimodal_s2s.types import Emits, EncoderInfo, Modality, SequenceOutput

#: (encoder, encoder_args): small versions of every image encoder, which every dense decoder runs over.
IMAGE_ENCODERS = [
    ("cnn_tiny", {"channels": (8, 16, 32, 64), "stem_width": 8}),  # resnet10t at tiny widths
    ("segnet_vgg16", {"channels": (4, 8, 8, 16, 16)}),
    ("segnet_basic", {"channels": 8}),
    ("vit_tiny", {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 32, "patch_size": 8}),
]


def rows(encoded: SequenceOutput, index: torch.Tensor) -> SequenceOutput:
    state = None if encoded.final_state is None else encoded.final_state[index]
    return SequenceOutput(encoded.memory[index], encoded.mask[index], state)


class _Parametrized:
    #: id -> (registered name, args) of the family's small decoders; every check runs on each.
    DECODERS: dict[str, tuple[str, dict]] = {}

    def pytest_generate_tests(self, metafunc):
        if {"name", "args"} <= set(metafunc.fixturenames):
            metafunc.parametrize(("name", "args"), list(self.DECODERS.values()), ids=list(self.DECODERS))


class TextDecoderContract(_Parametrized):
    """Cached steps equal the full forward, padded memory changes nothing, cache reorders and memory shared by
    rows are exact, the declared ``attends`` is what step returns, gradients reach every parameter, and bad
    inputs are one InputError line. ``args`` may hold ``modality``, that of the memory's encoder."""

    VOCAB, MEMORY_DIM, BATCH, MEMORY_LEN, TOKENS, VALID = 29, 12, 3, 6, 5, (6, 3, 1)
    ATOL = 1e-5

    def make_decoder(self, name: str, args: dict):
        args = dict(args)
        modality = args.pop("modality", Modality.TEXT)
        info = EncoderInfo(modality=modality, emits=frozenset({Emits.SEQUENCE}), out_dim=self.MEMORY_DIM)
        torch.manual_seed(0)
        return decoder_entry(name).factory(info, vocab_size=self.VOCAB, **args).eval()

    def make_encoded(self, batch: int | None = None, length: int | None = None, valid=None) -> SequenceOutput:
        batch, length, valid = batch or self.BATCH, length or self.MEMORY_LEN, valid or self.VALID
        mask = torch.arange(length).unsqueeze(0) < torch.tensor(valid[:batch]).unsqueeze(1)
        return SequenceOutput(torch.randn(batch, length, self.MEMORY_DIM), mask)

    def tokens(self, batch: int | None = None, length: int | None = None) -> torch.Tensor:
        return torch.randint(0, self.VOCAB, (batch or self.BATCH, length or self.TOKENS))

    def bad_inputs(self, decoder, encoded: SequenceOutput) -> list[tuple[Callable[[], object], str]]:
        """The family's own (call, message) pairs besides the ones every text decoder refuses."""
        return []

    def test_cached_steps_equal_teacher_forcing_and_recomputation(self, name, args):
        decoder, encoded, tokens = self.make_decoder(name, args), self.make_encoded(), self.tokens()
        with torch.no_grad():
            full = decoder(tokens, encoded)
            cache, stepped = None, []
            for t in range(self.TOKENS):
                out = decoder.step(tokens[:, t : t + 1], encoded, cache)
                cache = out.cache
                stepped.append(out.logits)
                recomputed = decoder.step(tokens[:, : t + 1], encoded)  # no cache: the whole prefix again
                torch.testing.assert_close(recomputed.logits[:, -1], out.logits[:, 0], atol=self.ATOL, rtol=0)
            # chunks of several tokens after cached ones (the causal mask offset by the past)
            first = decoder.step(tokens[:, :2], encoded)
            second = decoder.step(tokens[:, 2:4], encoded, first.cache)
            third = decoder.step(tokens[:, 4:], encoded, second.cache)
        assert full.shape == (self.BATCH, self.TOKENS, self.VOCAB)
        torch.testing.assert_close(torch.cat(stepped, dim=1), full, atol=self.ATOL, rtol=0)
        torch.testing.assert_close(torch.cat([first.logits, second.logits, third.logits], 1), full, atol=self.ATOL,
                                   rtol=0)

    def test_padded_memory_rows_do_not_change_outputs(self, name, args):
        decoder = self.make_decoder(name, args)
        short = self.make_encoded(batch=1, length=4, valid=(4,))
        garbage = torch.randn(1, 3, self.MEMORY_DIM) * 100
        padded = SequenceOutput(
            torch.cat([short.memory, garbage], 1), torch.cat([short.mask, torch.zeros(1, 3, dtype=bool)], 1)
        )
        tokens = self.tokens(batch=1)
        with torch.no_grad():
            torch.testing.assert_close(decoder(tokens, padded), decoder(tokens, short), atol=self.ATOL, rtol=0)
            step_short = decoder.step(tokens, short, return_attention=True)
            step_padded = decoder.step(tokens, padded, return_attention=True)
        torch.testing.assert_close(step_padded.logits, step_short.logits, atol=self.ATOL, rtol=0)
        if decoder_entry(name).attends:
            torch.testing.assert_close(step_padded.attention[..., :4], step_short.attention, atol=self.ATOL, rtol=0)

    @pytest.mark.parametrize("index", [[2, 0, 0], [1, 2]], ids=["across-examples", "drop-rows"])
    def test_reordered_cache_equals_running_the_reordered_batch(self, name, args, index):
        decoder, encoded, tokens = self.make_decoder(name, args), self.make_encoded(), self.tokens()
        index = torch.tensor(index)
        with torch.no_grad():
            before = decoder.step(tokens[:, :3], encoded)
            after = decoder.step(tokens[index, 3:], encoded, before.cache.reorder(index))
            expected = decoder(tokens[index], rows(encoded, index))
            untouched = decoder.step(tokens[:, 3:], encoded, before.cache)  # the original cache still works
        torch.testing.assert_close(after.logits, expected[:, 3:], atol=self.ATOL, rtol=0)
        torch.testing.assert_close(untouched.logits, decoder(tokens, encoded)[:, 3:], atol=self.ATOL, rtol=0)

    @pytest.mark.parametrize(
        "index", [[1, 0, 2, 2, 5, 4], [2, 0, 0, 5, 1, 3], [4, 1]],
        ids=["within-examples", "across-examples", "drop-rows"],
    )
    def test_rows_sharing_an_examples_memory_equal_the_repeated_memory(self, name, args, index):
        """Beam search steps g rows per example over unrepeated memory; any later reorder stays right."""
        decoder, encoded, group = self.make_decoder(name, args), self.make_encoded(), 2
        tokens = self.tokens(batch=self.BATCH * group)
        repeated = encoded.repeat_interleave(group)
        index = torch.tensor(index)
        with torch.no_grad():
            shared = decoder.step(tokens[:, :3], encoded, return_attention=True)
            copied = decoder.step(tokens[:, :3], repeated, return_attention=True)
            after = decoder.step(tokens[index, 3:], encoded, shared.cache.reorder(index))
            expected = decoder(tokens[index], rows(repeated, index))
            whole = decoder.step(tokens, encoded).logits
        torch.testing.assert_close(shared.logits, copied.logits, atol=self.ATOL, rtol=0)
        torch.testing.assert_close(shared.attention, copied.attention, atol=self.ATOL, rtol=0)
        torch.testing.assert_close(after.logits, expected[:, 3:], atol=self.ATOL, rtol=0)
        torch.testing.assert_close(whole, decoder(tokens, repeated), atol=self.ATOL, rtol=0)

    def test_declared_attends_is_what_step_returns(self, name, args):
        decoder, encoded, tokens = self.make_decoder(name, args), self.make_encoded(), self.tokens()
        with torch.no_grad():
            first = decoder.step(tokens[:, :3], encoded, return_attention=True)
            second = decoder.step(tokens[:, 3:4], encoded, first.cache, return_attention=True)
            plain = decoder.step(tokens[:, :3], encoded)
        assert plain.attention is None
        torch.testing.assert_close(first.logits, plain.logits, atol=self.ATOL, rtol=0)  # explicit path == SDPA
        if not decoder_entry(name).attends:
            assert first.attention is None and second.attention is None
            return
        for out, new in ((first, 3), (second, 1)):
            assert out.attention.shape == (self.BATCH, new, self.MEMORY_LEN)
            torch.testing.assert_close(out.attention.sum(-1), torch.ones(self.BATCH, new))
            assert torch.all(out.attention.masked_select(~encoded.mask.unsqueeze(1)) == 0)

    def test_backward_reaches_every_parameter(self, name, args):
        decoder, encoded, tokens = self.make_decoder(name, args).train(), self.make_encoded(), self.tokens()
        encoded.memory.requires_grad_(True)
        logits = decoder(tokens, encoded)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
        assert encoded.memory.grad is not None and encoded.memory.grad.abs().sum() > 0
        assert all(p.grad is not None for p in decoder.parameters())

    def test_bad_inputs_raise_one_input_error_line(self, name, args):
        decoder, encoded = self.make_decoder(name, args), self.make_encoded()
        long = torch.zeros(self.BATCH, 2, dtype=torch.long)
        cases = [
            (lambda: decoder.step(self.tokens(batch=self.BATCH + 1), encoded), "not a multiple of the 3 examples"),
            (lambda: decoder(long, SequenceOutput(torch.randn(self.BATCH, 5), encoded.mask)), "memory must be"),
            (lambda: decoder(long, SequenceOutput(torch.randn(self.BATCH, 5, 3), encoded.mask)), "memory must be"),
            *self.bad_inputs(decoder, encoded),
        ]
        for call, message in cases:
            with pytest.raises(InputError, match=message) as error:
                call()
            assert "\n" not in str(error.value), message


class DenseDecoderContract:
    """Over every image encoder: logits of the input's size at odd sizes, features of the declared
    out_channels and out_reduction, gradients through encoder, decoder and head, and class attention
    exactly where the registry entry declares it."""

    #: (registered name, args) of the family's small decoder
    DECODER: tuple[str, dict] = ("", {})
    NUM_CLASSES = 5
    #: Odd sizes each encoder accepts: any size for CNNs and SegNet encoders, multiples of the patch (8) for the ViT.
    ODD_SIZES = {"vit_tiny": [(24, 40), (40, 24)]}
    ANY_ODD_SIZES = [(37, 53), (45, 33)]

    def pytest_generate_tests(self, metafunc):
        if {"encoder", "encoder_args"} <= set(metafunc.fixturenames):
            metafunc.parametrize(("encoder", "encoder_args"), IMAGE_ENCODERS, ids=[name for name, _ in IMAGE_ENCODERS])

    def make_model(self, encoder: str, encoder_args: dict):
        name, args = self.DECODER
        torch.manual_seed(0)
        return multimodal_s2s.create_model(encoder, name, encoder_args, args, num_classes=self.NUM_CLASSES)

    def test_odd_input_sizes_give_logits_of_the_input_size(self, encoder, encoder_args):
        model = self.make_model(encoder, encoder_args).eval()
        with torch.no_grad():
            for height, width in self.ODD_SIZES.get(encoder, self.ANY_ODD_SIZES):
                assert model(torch.randn(2, 3, height, width)).shape == (2, self.NUM_CLASSES, height, width)

    def test_features_have_the_declared_channels_and_reduction(self, encoder, encoder_args):
        model = self.make_model(encoder, encoder_args).eval()
        with torch.no_grad():
            features = model.decoder(model.encoder.encode_feature_maps(torch.randn(1, 3, 64, 96)), (64, 96))
        assert features.shape[1] == model.decoder.out_channels
        assert (64 // features.shape[-2], 96 // features.shape[-1]) == (model.decoder.out_reduction,) * 2

    def test_backward_reaches_the_encoder_decoder_and_head(self, encoder, encoder_args):
        model = self.make_model(encoder, encoder_args)
        logits = model(torch.randn(2, 3, 32, 48))
        assert logits.shape == (2, self.NUM_CLASSES, 32, 48)
        logits.logsumexp(1).mean().backward()
        head_classifies = bool(list(model.head.parameters()))  # a 1x1 classifier unless the decoder scores classes
        assert head_classifies != decoder_entry(self.DECODER[0]).makes_class_scores
        for part in (model.encoder, model.decoder, model.head) if head_classifies else (model.encoder, model.decoder):
            grads = [p.grad for p in part.parameters() if p.requires_grad]
            assert grads and all(g is not None for g in grads)
            assert any(g.abs().sum() > 0 for g in grads)

    def test_class_attention_where_declared(self, encoder, encoder_args):
        model = self.make_model(encoder, encoder_args).eval()
        declared = decoder_entry(self.DECODER[0]).class_attention
        assert model.draws_class_attention == declared
        images = torch.randn(2, 3, 64, 96)  # the deepest grid of every encoder has 2+ cells
        with torch.no_grad():
            if not declared:
                with pytest.raises(ValueError, match="has no class attention"):
                    model.logits_and_class_attention(images)
                return
            deepest = model.encoder.encode_feature_maps(images).features[-1]
            logits, attention = model.logits_and_class_attention(images)
        assert logits.shape == (2, self.NUM_CLASSES, 64, 96)
        assert attention.shape == (2, self.NUM_CLASSES, *deepest.shape[-2:]) and (attention >= 0).all()
        torch.testing.assert_close(attention.sum(dim=(-2, -1)), torch.ones(2, self.NUM_CLASSES))
        assert not torch.allclose(attention[:, 0], attention[:, 1])  # each class attends in its own way
