"""``shared_embeddings``: one token table read by a text encoder and the decoder (and the tied output), kept
one table through the optimizer, a checkpoint round trip and Marian's import."""

from __future__ import annotations

import pytest
import torch

from multimodal_s2s import create_model
from multimodal_s2s.checkpoint import ModelConfig
from multimodal_s2s.models import build_model

VOCAB = 13


def shared_model(encoder: str = "text_transformer_tiny", decoder: str = "transformer_tiny", **decoder_args):
    return create_model(encoder, decoder, {"vocab_size": VOCAB}, decoder_args, vocab_size=VOCAB, shared_embeddings=True)


def test_one_table_for_encoder_decoder_and_output():
    model = shared_model()
    table = model.decoder.embedding.weight
    assert model.encoder.embedding.weight is table and model.decoder.output.weight is table
    tokens = torch.randint(4, VOCAB, (2, 5))
    model(tokens, tokens).sum().backward()
    assert table.grad is not None and table.grad[4:].abs().sum() > 0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()  # one parameter, one update: the encoder and the decoder still read the same values
    assert torch.equal(model.encoder.embedding.weight, model.decoder.embedding.weight)
    separate = create_model("text_transformer_tiny", "transformer_tiny", {"vocab_size": VOCAB}, vocab_size=VOCAB)
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in model.parameters()) == table.numel()


def test_sharing_survives_a_state_dict_round_trip():
    model = shared_model()
    rebuilt = build_model(ModelConfig.from_dict(model.config.to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.encoder.embedding.weight is rebuilt.decoder.embedding.weight
    assert torch.equal(rebuilt.decoder.embedding.weight, model.decoder.embedding.weight)


def test_lstm_encoder_with_rnn_decoder_of_equal_width():
    model = shared_model("text_lstm_tiny", "rnn_attention", embed_dim=create_model(
        "text_lstm_tiny", "rnn_attention", {"vocab_size": VOCAB}, vocab_size=VOCAB).encoder.embedding.embedding_dim)
    assert model.encoder.embedding is model.decoder.embedding


@pytest.mark.parametrize(
    ("encoder", "decoder", "encoder_args", "message"),
    [
        ("text_transformer_tiny", "transformer", {"vocab_size": VOCAB}, r"encoder \(13, 64\) and decoder \(13, 256\)"),
        ("text_transformer_tiny", "transformer_tiny", {"vocab_size": 20}, r"encoder \(20, 64\) and decoder \(13, 64\)"),
        ("cnn_tiny", "transformer_tiny", {}, r"got encoder None and decoder \(13, 64\)"),
    ],
)
def test_parts_that_cannot_share_fail_in_one_line(encoder, decoder, encoder_args, message):
    with pytest.raises(ValueError, match=r"shared_embeddings needs a text encoder and a decoder .*" + message):
        create_model(encoder, decoder, encoder_args, vocab_size=VOCAB, shared_embeddings=True)


def test_dense_decoders_refuse_shared_embeddings():
    with pytest.raises(ValueError, match="shared_embeddings needs a text decoder; 'unet' makes"):
        create_model("cnn_tiny", "unet", num_classes=3, shared_embeddings=True)
