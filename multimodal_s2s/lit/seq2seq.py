"""Seq2SeqModule: the one LightningModule for every text-out task (captioning, ASR, translation).

It takes plain config (names and numbers). The model is built in ``setup`` (see ``lit.base``): from
the checkpoint the run starts from, else from that config and the data module's tokenizers; the
checkpoint header (task, model config, tokenizers, preprocessing, decoding defaults, validation
metrics) is written into every checkpoint, and ``Seq2SeqModule.load_from_checkpoint(path)`` rebuilds
the model from it.

Batches are dicts:
    inputs: images (B, 3, H, W) | waveforms (B, S) | source token ids (B, L)
    lengths: (B,) samples or tokens, or None for images
    tokens: (B, 1 + L_out + 1) long: BOS, target ids, EOS, then PAD
    references: list[list[str]], every reference text of each example
    ids: list[str], where each example came from (a file, a source sentence, a generated scene)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s.checkpoint import CheckpointHeader, DecodingDefaults
from multimodal_s2s.decoding import DecodingOptions, decode
from multimodal_s2s.lit.base import SuiteModule, evaluation_loss_means
from multimodal_s2s.lit.optim import check_label_smoothing, check_optimizer_options
from multimodal_s2s.lit.transfer import check_transfer_options
from multimodal_s2s.metrics.text import TEXT_METRICS
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.models.ctc import CTCHead
from multimodal_s2s.models.from_checkpoint import new_ctc_head
from multimodal_s2s.outputs import json_score
from multimodal_s2s.preprocessing.audio import AudioFeatures
from multimodal_s2s.registry import encoder_entry
from multimodal_s2s.types import PAD_ID, Modality


class Seq2SeqModule(SuiteModule):
    """Teacher forcing with label smoothing in training; beam-search decoding and metrics in validation
    and test (logged as ``val/<name>``, ``test/<name>``); decoded texts in predict.

    Args:
        encoder, decoder, encoder_args, decoder_args, shared_embeddings: as for ``multimodal_s2s.create_model``
            (``shared_embeddings`` needs a joint source/target vocabulary: ``data.joint_vocab``).
        lr, weight_decay, warmup_steps: AdamW with linear warmup, then cosine decay to 0.
        label_smoothing: for the cross-entropy over target tokens.
        freeze_encoder_epochs, encoder_lr_scale: transfer learning (``lit.transfer``): the encoder frozen for
            the first N epochs; its learning rate ``lr * encoder_lr_scale``.
        metrics: names from ``metrics.text.TEXT_METRICS`` computed on decoded validation / test text.
        beam_size, max_length, length_penalty: decoding options for validation, test and predict.
        no_repeat_ngram_size: the ban on repeated n-grams in those decodings, recorded in the checkpoint
            for the pipelines (None: the task's default, ``checkpoint.default_no_repeat_ngram_size``; 0: none).
        ctc_weight: w of the hybrid CTC/attention loss ``(1 - w) * attention + w * CTC`` (0 = no CTC
            head); the head (``models.ctc.CTCHead``, blank = PAD id) is saved as ``ctc_head.*``.
        spec_augment: audio encoders: keyword arguments of ``audio.SpecAugment`` (None: its defaults).
            Audio batches carry waveforms; ``audio.AudioFeatures`` turns them into normalized log-mel
            on the module's device (SpecAugment in training only) before the encoder, everywhere.
        init_checkpoint: a suite checkpoint to fine-tune (``mms2s import`` output, or an earlier run): its
            model, weights, tokenizer, preprocessing and decoding rules replace the recipe's (``lit.base``).
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
        no_repeat_ngram_size: int | None = None,
        ctc_weight: float = 0.0,
        spec_augment: dict[str, Any] | None = None,
        freeze_encoder_epochs: int = 0,
        encoder_lr_scale: float = 1.0,
        shared_embeddings: bool = False,
        init_checkpoint: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_transfer_options(freeze_encoder_epochs, encoder_lr_scale)
        unknown = set(metrics or []) - set(TEXT_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {sorted(TEXT_METRICS)}")
        if not 0.0 <= ctc_weight < 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1), got {ctc_weight}")
        check_optimizer_options(lr, weight_decay, warmup_steps)
        check_label_smoothing(label_smoothing)
        encoder_entry(encoder)  # an unknown name fails here, in one line, before any data is read
        self.ctc_head: CTCHead | None = None
        self.audio_features: AudioFeatures | None = None
        self.text_metrics = nn.ModuleDict(  # modules: their states follow the device and reduce across ranks
            {split: nn.ModuleList([TEXT_METRICS[name]() for name in metrics or []]) for split in ("val", "test")}
        )
        self.loss_means = evaluation_loss_means()
        self.decoding = DecodingOptions(beam_size=beam_size, max_length=max_length, length_penalty=length_penalty,
                                        no_repeat_ngram_size=no_repeat_ngram_size or 0)

    def header_from_data(self) -> CheckpointHeader:
        data, hp = self.trainer.datamodule, self.hparams
        encoder_args = dict(hp.encoder_args or {})
        if encoder_entry(hp.encoder).modality == Modality.TEXT:
            encoder_args["vocab_size"] = data.source_tokenizer.vocab_size
        config = ModelConfig(hp.encoder, hp.decoder, encoder_args, dict(hp.decoder_args or {}),
                             vocab_size=data.tokenizer.vocab_size, shared_embeddings=hp.shared_embeddings)
        return CheckpointHeader(
            task=data.task,
            model=config,
            data=data.description,
            preprocessing=data.preprocessing,
            tokenizer=data.tokenizer,
            source_tokenizer=getattr(data, "source_tokenizer", None),
            decoding=DecodingDefaults(hp.beam_size, hp.max_length, hp.length_penalty, hp.no_repeat_ngram_size),
            ctc_weight=hp.ctc_weight,
        )

    def build(self, header: CheckpointHeader) -> None:
        self.model = build_model(header.model)
        ngram = self.hparams.get("no_repeat_ngram_size")  # the recipe's, else the checkpoint's
        ngram = header.decoding.no_repeat_ngram_size if ngram is None else ngram
        self.decoding = replace(self.decoding, no_repeat_ngram_size=ngram, **header.decoding.rules())
        info = self.model.encoder.info
        self.ctc_head = new_ctc_head(header, info.out_dim)
        self.audio_features = None
        if info.modality == Modality.AUDIO:
            self.audio_features = AudioFeatures(info.n_mels, self.hparams.spec_augment, header.preprocessing.log_mel)

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
        weight = self.header.ctc_weight
        return (1 - weight) * loss + weight * self.ctc_head.loss(encoded, tokens[:, 1:])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self.model_step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["tokens"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: dict[str, Any], split: str) -> None:
        """``<split>/loss`` is weighted by each batch's target tokens: the mean over the split's tokens, the
        same however the examples are batched or split between DDP ranks (the CTC share of a hybrid
        loss, a mean per utterance, is weighted the same way, so it can differ in the 4th digit)."""
        loss = self.model_step(batch)
        self.loss_means[split].update(loss.detach(), weight=int((batch["tokens"][:, 1:] != PAD_ID).sum()))
        self.log(f"{split}/loss", self.loss_means[split], prog_bar=True)
        if self.text_metrics[split]:
            hypotheses = [text for text, _ in self.generate(batch["inputs"], batch.get("lengths"))]
            for metric in self.text_metrics[split]:
                metric.update(hypotheses, batch["references"])

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, split: str) -> None:
        """Each metric is reduced over the ranks when computed, so the same on every rank: ``sync_dist``'s mean
        keeps it as it is (and Lightning does not warn that it is not synced)."""
        for metric in self.text_metrics[split]:
            for key, value in metric.compute().items():
                shown = key in ("bleu4", "bleu", "wer", "exact_match")
                self.log(f"{split}/{key}", value, prog_bar=shown, sync_dist=True)
            metric.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """One record per example: its id, the decoded text and score, and the references."""
        outputs = self.generate(batch["inputs"], batch.get("lengths"))
        return [
            {"id": example_id, "prediction": text, "score": json_score(score), "references": references}
            for example_id, (text, score), references in zip(batch["ids"], outputs, batch["references"], strict=True)
        ]

    @torch.no_grad()
    def generate(self, inputs: Tensor, lengths: Tensor | None) -> list[tuple[str, float]]:
        """Decode a batch with the module's decoding options: (text, score) per example."""
        inputs, lengths = self.encoder_inputs(inputs, lengths)  # log-mel for audio
        results = decode(self.model, inputs, self.decoding, lengths)
        return [(self.header.tokenizer.decode(r.tokens), float(r.score)) for r in results]
