"""EncoderDecoder: any sequence-emitting encoder with any text decoder."""

from __future__ import annotations

from torch import Tensor, nn

from multimodal_s2s.checkpoint import ModelConfig
from multimodal_s2s.decoders.base import DecoderCache, StepOutput
from multimodal_s2s.encoders.base import Encoder, check_inputs
from multimodal_s2s.types import SequenceOutput


class EncoderDecoder(nn.Module):
    """Text out: ``encode`` once, then ``step`` token by token (or ``forward`` with teacher forcing)."""

    def __init__(self, encoder: Encoder, decoder: nn.Module, config: ModelConfig):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.config = config

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def encode(self, inputs: Tensor, lengths: Tensor | None = None) -> SequenceOutput:
        """inputs per the encoder's modality (see types.Modality), lengths (B,) -> SequenceOutput."""
        check_inputs(self.encoder.info, inputs, lengths)
        return self.encoder.encode_sequence(inputs, lengths)

    def step(
        self, tokens: Tensor, encoded: SequenceOutput, cache: DecoderCache | None = None, return_attention: bool = False
    ) -> StepOutput:
        """tokens (B, L_new) after the cached positions -> logits (B, L_new, V) and the new cache."""
        return self.decoder.step(tokens, encoded, cache, return_attention=return_attention)

    def forward(self, inputs: Tensor, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Teacher forcing: inputs, decoder input tokens (B, L) -> logits (B, L, V)."""
        return self.decoder(tokens, self.encode(inputs, lengths))
