"""What every text decoder offers, so that one decoding package serves them all.

A text decoder is built as ``Decoder(encoder_info, vocab_size=V, **args)`` and offers:

- ``forward(tokens, encoded) -> logits``: teacher forcing. tokens (B, L) long,
  logits (B, L, V); position i sees tokens[:, :i+1] and the whole valid memory.
- ``step(tokens, encoded, cache=None, return_attention=False) -> StepOutput``:
  incremental decoding. ``tokens`` (N, L_new) are appended after the positions the
  cache already holds (cache=None starts from scratch and computes what is needed
  from ``encoded`` once, e.g. the cross-attention keys/values). N is B or a multiple
  B * g of the B examples of ``encoded``: rows n*g .. n*g + g - 1 continue example n
  (beam search decodes K beams per example without copying the memory K times).
  Returns logits for the L_new positions and the grown cache. Calling ``step`` with the whole prefix and
  ``cache=None`` at every step is the uncached recomputation; both give the same logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


class DecoderCache(Protocol):
    """Explicit decoder state between steps (KV cache, RNN hidden state)."""

    def reorder(self, index: Tensor) -> DecoderCache:
        """Keep rows ``index`` (B',) long of the batch, in that order (beam search reordering).

        Must be right for any index, including one that moves rows across examples or
        drops rows: every per-row state is reordered, cross-attention keys/values too.
        """
        ...


@dataclass
class StepOutput:
    """Result of one ``step``.

    Attributes:
        logits: (B, L_new, V) unnormalized next-token scores.
        cache: the state after these positions.
        attention: (B, L_new, T) cross-attention weights over memory rows (mean over
            heads, of the last attention layer), when asked for and the decoder attends.
    """

    logits: Tensor
    cache: DecoderCache
    attention: Tensor | None = None
