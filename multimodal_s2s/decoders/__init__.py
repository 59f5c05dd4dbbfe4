"""Built-in decoders; importing this package registers them."""

from multimodal_s2s.decoders import rnn_attention, segnet, text_transformer  # noqa: F401
