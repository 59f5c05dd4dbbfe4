"""A CTC head over an encoder's memory, for the hybrid CTC/attention objective of ESPnet
(Watanabe et al. 2017): ``loss = (1 - w) * attention + w * CTC``.

The CTC blank is ``CTC_BLANK_ID`` = PAD_ID: padding is never a target, so its output serves as the
blank and the head has exactly ``vocab_size`` outputs. ``sequence_log_probs`` scores given token
sequences under CTC (used to rescore beam-search hypotheses). Training (``lit.seq2seq``) and
transcription (``pipelines``) both use it; its weights are saved as ``ctc_head.*``, and a checkpoint has
one when its header says so (``CheckpointHeader.has_ctc_head``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s.types import CTC_BLANK_ID, EOS_ID, PAD_ID, SequenceOutput


class CTCHead(nn.Module):
    """Encoder memory (B, T, D) -> CTC log-probabilities (B, T, V) over the target vocabulary (blank = PAD)."""

    def __init__(self, memory_dim: int, vocab_size: int):
        super().__init__()
        self.project = nn.Linear(memory_dim, vocab_size)

    def forward(self, encoded: SequenceOutput) -> Tensor:
        return F.log_softmax(self.project(encoded.memory).float(), dim=-1)  # (B, T, V)

    def loss(self, encoded: SequenceOutput, targets: Tensor) -> Tensor:
        """CTC loss, per target token and averaged over the batch.

        ``targets`` (B, L): token ids, each row ending at its first EOS or PAD (BOS removed).
        Utterances whose targets cannot fit their frames add 0 (``zero_infinity``).
        """
        target_lengths = _lengths_before_end(targets)  # (B,)
        return F.ctc_loss(
            self(encoded).transpose(0, 1),  # (T, B, V)
            targets,
            encoded.mask.sum(dim=1),
            target_lengths,
            blank=CTC_BLANK_ID,
            reduction="mean",
            zero_infinity=True,
        )

    @torch.no_grad()
    def sequence_log_probs(self, encoded: SequenceOutput, hypotheses: list[list[int]]) -> Tensor:
        """log P_ctc(hypothesis | audio) (H,) of each hypothesis of the single example in ``encoded`` (B = 1)."""
        log_probs = self(encoded).transpose(0, 1).expand(-1, len(hypotheses), -1)  # (T, H, V)
        lengths = torch.tensor([len(h) for h in hypotheses])
        targets = torch.full((len(hypotheses), max(int(lengths.max()), 1)), PAD_ID, dtype=torch.long)
        for row, tokens in enumerate(hypotheses):
            targets[row, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        frames = encoded.mask.sum(dim=1).expand(len(hypotheses))
        nll = F.ctc_loss(log_probs, targets.to(log_probs.device), frames, lengths, blank=CTC_BLANK_ID, reduction="none")
        return -nll


def _lengths_before_end(targets: Tensor) -> Tensor:
    """(B, L) ids -> (B,) the number of ids before the first EOS or PAD of each row."""
    ended = (targets == EOS_ID) | (targets == PAD_ID)  # (B, L)
    ended = torch.cat([ended, torch.ones_like(ended[:, :1])], dim=1)  # a row without an end ends at L
    return ended.int().argmax(dim=1)
