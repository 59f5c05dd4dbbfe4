"""The checks every encoder family passes, written once: a family's test file subclasses ``EncoderContract``
(or ``PaddedEncoderContract`` where its inputs have lengths) as ``Test<Family>Contract``, lists its tiny
encoders in ``ENCODERS`` and says how to make inputs; pytest collects the subclass, never these bases."""

from __future__ import annotations

import pytest
import torch

from multimodal_s2s.encoders.base import check_inputs
from multimodal_s2s.errors import InputError
from multimodal_s2s.registry import encoder_entry
from multimodal_s2s.types import PAD_ID, Emits, Modality

Case = tuple[torch.Tensor, "torch.Tensor | None", str]  # inputs, lengths, the InputError's message


class EncoderContract:
    """Declared EncoderInfo matches what the encoder returns; bad inputs give one InputError line."""

    #: id -> (registered name, constructor args) of the family's tiny encoders; every check runs on each.
    ENCODERS: dict[str, tuple[str, dict]] = {}

    def pytest_generate_tests(self, metafunc):
        if {"name", "args"} <= set(metafunc.fixturenames):
            metafunc.parametrize(("name", "args"), list(self.ENCODERS.values()), ids=list(self.ENCODERS))

    def make_encoder(self, name: str, args: dict):
        torch.manual_seed(0)
        return encoder_entry(name).factory(**args).eval()

    def make_inputs(self, name: str, args: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch of two with its lengths (None where the family takes none)."""
        raise NotImplementedError

    def valid_rows(self, name: str, args: dict, lengths: torch.Tensor | None, rows: int) -> list[int]:
        """How many memory rows of each example the mask must keep."""
        raise NotImplementedError

    def bad_inputs(self, name: str, args: dict) -> list[Case]:
        """Inputs the encoder itself refuses (the rank, dtype and lengths are checked from its declared info)."""
        raise NotImplementedError

    def test_outputs_match_declared_info(self, name, args):
        encoder = self.make_encoder(name, args)
        info, entry = encoder.info, encoder_entry(name)
        assert info.emits == entry.emits and info.modality == entry.modality
        inputs, lengths = self.make_inputs(name, args)
        with torch.no_grad():
            encoded = encoder.encode_sequence(inputs, lengths)
        batch, rows, width = encoded.memory.shape
        assert batch == inputs.shape[0] and width == info.out_dim
        assert encoded.mask.dtype == torch.bool and encoded.mask.shape == (batch, rows)
        assert encoded.mask.sum(1).tolist() == self.valid_rows(name, args, lengths, rows)
        assert encoded.memory[~encoded.mask].abs().sum() == 0  # padded rows are zero as well as masked
        if Emits.FINAL_STATE in info.emits:
            assert encoded.final_state.shape == (batch, info.state_dim)
        else:
            assert encoded.final_state is None
        assert (info.grid is None) == (info.modality != Modality.IMAGE)
        if Emits.FEATURE_MAPS not in info.emits:
            return
        with torch.no_grad():
            maps = encoder.encode_feature_maps(inputs)
        side = inputs.shape[-1]
        assert [f.shape[1] for f in maps.features] == list(info.channels)
        assert [inputs.shape[-2] // f.shape[-2] for f in maps.features] == list(info.reductions)
        assert [side // f.shape[-1] for f in maps.features] == list(info.reductions)
        deepest = maps.features[-1]
        assert rows == deepest.shape[-2] * deepest.shape[-1] == encoded.mask[0].sum()
        assert info.grid.size(tuple(inputs.shape[-2:])) == tuple(deepest.shape[-2:])
        assert (Emits.POOL_INDICES in info.emits) == (maps.pool_indices is not None)

    def test_bad_inputs_raise_one_input_error_line(self, name, args):
        encoder = self.make_encoder(name, args)
        info = encoder.info
        inputs, lengths = self.make_inputs(name, args)
        text = info.modality == Modality.TEXT
        wrong_dtype = inputs.float() if text else inputs.long()
        # The rank and dtype every encoder is checked against by the models, from its declared modality alone
        declared = [(inputs[0], None, "inputs must be"), (wrong_dtype, None, "integer" if text else "floating")]
        for bad, bad_lengths, message in declared + self.declared_bad_inputs(name, args):
            with pytest.raises(InputError, match=message) as error:
                check_inputs(info, bad, bad_lengths)
            assert "\n" not in str(error.value), message
        for bad, bad_lengths, message in self.bad_inputs(name, args):
            with pytest.raises(InputError, match=message) as error:
                encoder.encode_sequence(bad, bad_lengths)
            assert "\n" not in str(error.value), message

    def declared_bad_inputs(self, name: str, args: dict) -> list[Case]:
        """More inputs that the models refuse from the declared info (check_inputs) before the encoder runs."""
        return []


class PaddedEncoderContract(EncoderContract):
    """And, where inputs have lengths, padding (of any content) changes no valid row: the time axis is last."""

    #: the short example's length and the long one's it is padded to
    LENGTHS = (5, 9)
    ATOL, RTOL = 1e-5, 1e-4

    def make_input(self, name: str, args: dict, length: int) -> torch.Tensor:
        """One example (1, ..., length)."""
        raise NotImplementedError

    def make_padding(self, name: str, args: dict, length: int) -> torch.Tensor:
        """What pads an example by ``length`` steps; not zeros where the family allows anything."""
        raise NotImplementedError

    def make_inputs(self, name, args):
        short, long = self.LENGTHS
        return self.padded_batch(name, args, self.make_input(name, args, short)), torch.tensor([long, short])

    def padded_batch(self, name: str, args: dict, short: torch.Tensor) -> torch.Tensor:
        """The long example first, then ``short`` padded to its length."""
        length, long = short.shape[-1], self.LENGTHS[1]
        padded = torch.cat([short, self.make_padding(name, args, long - length)], dim=-1)
        return torch.cat([self.make_input(name, args, long), padded])

    def declared_bad_inputs(self, name, args):
        inputs, _ = self.make_inputs(name, args)
        long = self.LENGTHS[1]
        return [
            (inputs, torch.tensor([long + 1, 2]), "exceed the padded length"),
            (inputs, torch.tensor([long, 0]), "length zero"),
            (inputs, torch.tensor([long]), "lengths must be integer of shape"),
            (inputs, torch.tensor([long, 2.0]), "lengths must be integer of shape"),
        ]

    @pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])  # no grad: torch's fused fast paths
    def test_padding_does_not_change_valid_rows(self, name, args, grad):
        encoder = self.make_encoder(name, args)
        short = self.make_input(name, args, self.LENGTHS[0])
        with torch.set_grad_enabled(grad):
            alone = encoder.encode_sequence(short, torch.tensor([self.LENGTHS[0]]))
            batched = encoder.encode_sequence(self.padded_batch(name, args, short), torch.tensor(self.LENGTHS[::-1]))
        mask = batched.mask[1]
        assert mask.sum() == alone.mask.sum() and not mask.all()
        valid = alone.memory[0][alone.mask[0]]
        torch.testing.assert_close(batched.memory[1][mask], valid, atol=self.ATOL, rtol=self.RTOL)
        if alone.final_state is not None:
            torch.testing.assert_close(batched.final_state[1:], alone.final_state, atol=self.ATOL, rtol=self.RTOL)


class TokenEncoderContract(PaddedEncoderContract):
    """Text encoders: token ids (1, T) from 4 to ``VOCAB`` - 1 (past the special ids), padded with PAD_ID;
    every valid token is a memory row."""

    VOCAB: int

    def make_input(self, name, args, length):
        return torch.randint(4, self.VOCAB, (1, length))

    def make_padding(self, name, args, length):
        return torch.full((1, length), PAD_ID)

    def valid_rows(self, name, args, lengths, rows):
        return lengths.tolist()
