"""Built-in encoders; importing this package registers them."""

from multimodal_s2s.encoders import audio_transformer, cnn, segnet, text_lstm, text_transformer, vit  # noqa: F401
