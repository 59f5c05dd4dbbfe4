"""Built-in decoders; importing this package registers them."""

from multimodal_s2s.decoders import mask_transformer, rnn_attention, segnet, text_transformer, unet  # noqa: F401
