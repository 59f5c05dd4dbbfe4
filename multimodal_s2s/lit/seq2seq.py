"""Seq2SeqModule: the one LightningModule for every text-out task (captioning, ASR, translation).

It takes plain config (names and numbers). The model is built in ``setup`` from that config
and the datamodule's tokenizers, so that vocabularies come from the data; the config, the
tokenizers and the preprocessing are written into every checkpoint (see checkpoint.py).

Batches are dicts:
    inputs: images (B, 3, H, W) | waveforms (B, S) | source token ids (B, L)
    lengths: (B,) samples or tokens, or None for images
    tokens: (B, 1 + L_out + 1) long: BOS, target ids, EOS, then PAD
    references: list[list[str]], every reference text of each example
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s.audio import N_MELS
from multimodal_s2s.checkpoint import CHECKPOINT_KEY
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.lit.optim import adamw_warmup_cosine
from multimodal_s2s.lit.speech import CTC_BLANK_ID, AudioFeatures, CTCHead
from multimodal_s2s.metrics.text import TEXT_METRICS
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.registry import encoder_entry
from multimodal_s2s.types import PAD_ID, Modality

TASK = "seq2seq"


class Seq2SeqModule(L.LightningModule):
    """Teacher forcing with label smoothing in training; beam-search decoding and metrics in validation.

    Args:
        encoder, decoder, encoder_args, decoder_args: as for ``multimodal_s2s.create_model``.
        lr, weight_decay, warmup_steps: AdamW with linear warmup, then cosine decay to 0.
        label_smoothing: for the cross-entropy over target tokens.
        metrics: names from ``metrics.text.TEXT_METRICS`` computed on decoded validation text.
        beam_size, max_length, length_penalty: decoding options for validation.
        ctc_weight: w of the hybrid CTC/attention loss ``(1 - w) * attention + w * CTC`` (0 = no CTC
            head); the head (``lit.speech.CTCHead``, blank = PAD id) is saved as ``ctc_head.*``.
        spec_augment: audio encoders: keyword arguments of ``audio.SpecAugment`` (None: its defaults).
            Audio batches carry waveforms; ``lit.speech.AudioFeatures`` turns them into normalized log-mel
            on the module's device (SpecAugment in training only) before the encoder, everywhere.
    """

    def __init__(
        self,
        encoder: str,
        decoder: str,
        encoder_args: dict[str, Any] | None = None,
        decoder_args: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 200,
        label_smoothing: float = 0.1,
        metrics: list[str] | None = None,
        beam_size: int = 4,
        max_length: int = 64,
        length_penalty: float = 1.0,
        ctc_weight: float = 0.0,
        spec_augment: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        unknown = set(metrics or []) - set(TEXT_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {sorted(TEXT_METRICS)}")
        self.modality = encoder_entry(encoder).modality
        if not 0.0 <= ctc_weight < 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1), got {ctc_weight}")
        self.model = None
        self.ctc_head: CTCHead | None = None
        self.audio_features = None
        if self.modality == Modality.AUDIO:
            self.audio_features = AudioFeatures((encoder_args or {}).get("n_mels", N_MELS), spec_augment)
        self.tokenizer = None
        self.meta: dict[str, Any] = {}
        self.val_metrics = nn.ModuleList([TEXT_METRICS[name]() for name in metrics or []])  # on the device, for DDP
        self.decoding = DecodingOptions(beam_size=beam_size, max_length=max_length, length_penalty=length_penalty)

    def setup(self, stage: str) -> None:
        if self.model is not None:
            return
        data = self.trainer.datamodule
        encoder_args = dict(self.hparams.encoder_args or {})
        if self.modality == Modality.TEXT:
            encoder_args["vocab_size"] = data.source_tokenizer.vocab_size
        config = ModelConfig(
            self.hparams.encoder,
            self.hparams.decoder,
            encoder_args,
            dict(self.hparams.decoder_args or {}),
            vocab_size=data.tokenizer.vocab_size,
        )
        self.model = build_model(config)
        if self.hparams.ctc_weight > 0:
            self.ctc_head = CTCHead(self.model.encoder.info.out_dim, config.vocab_size)
        self.tokenizer = data.tokenizer
        self.meta = {
            "task": TASK,
            "model": config.to_dict(),
            "tokenizer": data.tokenizer.to_dict(),
            "source_tokenizer": data.source_tokenizer.to_dict() if self.modality == Modality.TEXT else None,
            "preprocess": data.preprocess,
            "decoding": {
                "beam_size": self.hparams.beam_size,
                "max_length": self.hparams.max_length,
                "length_penalty": self.hparams.length_penalty,
            },
            "ctc": {"weight": self.hparams.ctc_weight, "blank": CTC_BLANK_ID} if self.ctc_head else None,
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.meta

    def encoder_inputs(self, inputs: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """What the encoder reads: audio waveforms (B, S) become log-mel (B, n_mels, frames); else unchanged."""
        return (inputs, lengths) if self.audio_features is None else self.audio_features(inputs, lengths)

    def model_step(self, batch: dict[str, Any]) -> Tensor:
        """Teacher-forced, label-smoothed cross-entropy over the target tokens (PAD ignored), mixed with
        the CTC loss when there is a CTC head."""
        tokens = batch["tokens"]  # (B, L + 1)
        encoded = self.model.encode(*self.encoder_inputs(batch["inputs"], batch.get("lengths")))
        logits = self.model.decoder(tokens[:, :-1], encoded)  # (B, L, V), as model.forward
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(),
            tokens[:, 1:].flatten(),
            ignore_index=PAD_ID,
            label_smoothing=self.hparams.label_smoothing,
        )
        if self.ctc_head is None:
            return loss
        weight = self.hparams.ctc_weight
        return (1 - weight) * loss + weight * self.ctc_head.loss(encoded, tokens[:, 1:])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self.model_step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["tokens"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss = self.model_step(batch)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["tokens"].shape[0])
        if self.val_metrics:
            hypotheses = self.generate(batch["inputs"], batch.get("lengths"))
            for metric in self.val_metrics:
                metric.update(hypotheses, batch["references"])

    def on_validation_epoch_end(self) -> None:
        for metric in self.val_metrics:
            for key, value in metric.compute().items():
                self.log(f"val/{key}", value, prog_bar=key in ("bleu4", "bleu", "wer", "exact_match"))
            metric.reset()

    @torch.no_grad()
    def generate(self, inputs: Tensor, lengths: Tensor | None) -> list[str]:
        """Decode a batch with the validation options and detokenize."""
        inputs, lengths = self.encoder_inputs(inputs, lengths)  # log-mel for audio
        results = decode(self.model, inputs, self.decoding, lengths)
        return [self.tokenizer.decode(r.tokens) for r in results]

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams  # self.parameters(): the model's and the CTC head's
        total = int(self.trainer.estimated_stepping_batches)
        return adamw_warmup_cosine(self.parameters(), hp.lr, hp.weight_decay, hp.warmup_steps, total)
