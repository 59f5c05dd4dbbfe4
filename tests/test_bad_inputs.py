"""Wrong shapes or dtypes, an empty batch or a zero-length sequence give one clear sentence."""

from __future__ import annotations

import pytest
import torch

from multimodal_s2s import create_model
from multimodal_s2s.errors import InputError
from multimodal_s2s.registry import UnknownNameError


@pytest.fixture(scope="module")
def captioner():
    return create_model("cnn_tiny", "transformer_tiny", vocab_size=9)


@pytest.fixture(scope="module")
def recognizer():
    return create_model("audio_transformer_tiny", "transformer_tiny", vocab_size=9)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (torch.randn(3, 32, 32), "(B, 3, H, W)"),
        (torch.randn(0, 3, 32, 32), "empty batch"),
        (torch.randn(2, 1, 32, 32), "3 channels"),
        (torch.randint(0, 255, (2, 3, 32, 32)), "floating point"),
        (torch.randn(2, 3, 32, 0), "length zero"),
        ([[1.0]], "torch.Tensor"),
    ],
)
def test_image_input_errors(captioner, inputs, expected):
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")) as error:
        captioner.encode(inputs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("inputs", "lengths", "expected"),
    [
        (torch.randn(2, 40, 50), torch.tensor([50, 30]), "80 mel bins"),
        (torch.randn(2, 80, 50), torch.tensor([50, 0]), "length zero"),
        (torch.randn(2, 80, 50), torch.tensor([50, 60]), "exceed"),
        (torch.randn(2, 80, 50), torch.tensor([50.0, 30.0]), "integer"),
        (torch.randn(2, 80, 50), torch.tensor([50]), "shape"),
    ],
)
def test_audio_input_errors(recognizer, inputs, lengths, expected):
    with pytest.raises(InputError, match=expected):
        recognizer.encode(inputs, lengths)


def test_text_inputs_must_be_token_ids():
    model = create_model("text_lstm_tiny", "rnn_attention", {"vocab_size": 20}, vocab_size=9)
    with pytest.raises(InputError, match="integer token ids"):
        model.encode(torch.randn(2, 5), torch.tensor([5, 3]))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid names: .*cnn_tiny"):
        create_model("cnn_tinny", "transformer_tiny", vocab_size=9)


def test_output_size_must_fit_the_decoder():
    with pytest.raises(ValueError, match="give vocab_size=N"):
        create_model("cnn_tiny", "transformer_tiny", num_classes=3)
