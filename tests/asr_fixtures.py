"""Helpers shared by the ASR tests: a tone "language" written as NeMo manifests (no espeak-ng needed),
a tiny ASR checkpoint trained on it in seconds, and long recordings of espeak-ng speech, pauses and noise."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import soundfile
import torch
from checkpoint_helpers import text_header, write_checkpoint
from lightning.pytorch.callbacks import Callback

from multimodal_s2s.checkpoint import MODEL_PREFIX, AudioPreprocessing, Task
from multimodal_s2s.data import espeak
from multimodal_s2s.data.asr import ASRDataModule
from multimodal_s2s.lit.seq2seq import Seq2SeqModule
from multimodal_s2s.models import build_model
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE

#: Each word is a tone of its own pitch; utterances are 1 to 3 words with short pauses.
WORD_TONES = {"up": 300.0, "down": 500.0, "left": 800.0, "right": 1200.0}
WORD_SECONDS, PAUSE_SECONDS, AMPLITUDE = 0.25, 0.1, 0.3
TINY_ENCODER_ARGS = {"d_model": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0}
TINY_DECODER_ARGS = {"d_model": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64, "dropout": 0.0}
SENTENCES = ("please open the red door", "set the timer to five minutes", "anna finds a small green box")
VOICE = espeak.Voice("en-us", "m1", 170, 50)
ONSET_AMPLITUDE = 0.01  # a clip's speech starts at its first sample this loud
#: ``mms2s transcribe`` of tone recordings: tones are not speech to the VAD (the energy splitter cuts them), and a
#: model trained for a few steps fails whisper's checks (every window's first decoding is kept).
TONE_TRANSCRIBE_FLAGS = [
    *("--windows", "energy", "--temperature-increment-on-fallback", "none", "--compression-ratio-threshold", "none"),
    *("--logprob-threshold", "none", "--no-speech-threshold", "none", "--max-ngram-repeats", "none"),
]


def tone_utterance(words: list[str]) -> np.ndarray:
    """(S,) float32 at 16 kHz: each word's tone followed by a pause."""
    time = np.arange(int(WORD_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    pause = np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), dtype=np.float32)
    parts = [np.r_[AMPLITUDE * np.sin(2 * np.pi * WORD_TONES[w] * time), pause] for w in words]
    return np.concatenate([pause, *parts]).astype(np.float32)


def write_librispeech(root: Path, speakers: tuple[str, ...] = ("11", "22", "33"), utterances: int = 2) -> None:
    """A LibriSpeech-layout folder: per speaker one chapter ("100") of tone recordings (FLAC) and its transcript."""
    for speaker in speakers:
        chapter = root / speaker / "100"
        chapter.mkdir(parents=True)
        lines = []
        for utt in range(utterances):
            utterance_id = f"{speaker}-100-{utt:04d}"
            soundfile.write(chapter / f"{utterance_id}.flac", tone_utterance(["up"]), SAMPLE_RATE)
            lines.append(f"{utterance_id} HELLO WORLD NUMBER {utt}")
        (chapter / f"{speaker}-100.trans.txt").write_text("\n".join(lines) + "\n")


def write_tone_manifest(folder: Path, count: int, seed: int, name: str) -> Path:
    """``count`` tone utterances as WAV files plus ``folder/name.jsonl`` (relative audio paths)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        words = rng.choices(sorted(WORD_TONES), k=rng.randint(1, 3))
        waveform = tone_utterance(words)
        audio_name = f"{name}-{index:03d}.wav"
        soundfile.write(folder / audio_name, waveform, SAMPLE_RATE)
        entry = {"audio_filepath": audio_name, "duration": len(waveform) / SAMPLE_RATE, "text": " ".join(words)}
        lines.append(json.dumps(entry))
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


class LossRecorder(Callback):
    """Appends each training step's loss to ``losses``."""

    def __init__(self, losses: list[float]):
        self.losses = losses

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))


def tiny_asr_run(
    folder: Path, steps: int, ctc_weight: float = 0.3, losses: list[float] | None = None, **trainer_args
) -> tuple[L.Trainer, Seq2SeqModule, ASRDataModule]:
    """Train a tiny hybrid CTC/attention model on tone utterances for ``steps`` steps; ``trainer_args``
    are more Trainer arguments, e.g. ``precision`` (``callbacks`` join the loss recorder)."""
    L.seed_everything(0, verbose=False)
    data = ASRDataModule(
        format="manifest",
        root=str(write_tone_manifest(folder, 24, seed=0, name="train")),
        val_root=str(write_tone_manifest(folder, 4, seed=1, name="val")),
        batch_size=8,
    )
    module = Seq2SeqModule(
        "audio_transformer_tiny",
        "transformer",
        encoder_args=TINY_ENCODER_ARGS,
        decoder_args=TINY_DECODER_ARGS,
        lr=3e-3,
        warmup_steps=5,
        metrics=["wer"],
        beam_size=2,
        max_length=24,
        ctc_weight=ctc_weight,
        spec_augment={"num_freq_masks": 0, "num_time_masks": 0},
    )
    callbacks = [LossRecorder(losses if losses is not None else []), *trainer_args.pop("callbacks", [])]
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        callbacks=callbacks,
        **trainer_args,
    )
    trainer.fit(module, data)
    return trainer, module, data


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """(S,) white noise whose RMS is ``dbfs`` relative to full scale."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def spoken_sentences(sentences: tuple[str, ...] = SENTENCES) -> list[np.ndarray]:
    """Each sentence spoken by espeak-ng (the caller skips without it)."""
    return [espeak.synthesize(text, VOICE) for text in sentences]


def join_with_pauses(clips: list[np.ndarray], pauses: list[float]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """pause, clip, pause, clip, ..., pause -> waveform, and each clip's speech (first to last loud sample) in s."""
    parts, speech, position = [], [], 0
    for clip, pause in zip([*clips, None], pauses, strict=True):
        parts.append(np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32))
        position += len(parts[-1])
        if clip is not None:
            loud = np.flatnonzero(np.abs(clip) > ONSET_AMPLITUDE)
            speech.append(((position + loud[0]) / SAMPLE_RATE, (position + loud[-1]) / SAMPLE_RATE))
            parts.append(clip)
            position += len(clip)
    return np.concatenate(parts), speech


def random_speech_checkpoint(path: Path, ctc_head: bool = True) -> Path:
    """Random weights (with a CTC head unless ``ctc_head`` is False); windows of up to 8 s, joined up to 3 s
    (a sentence of ``SENTENCES`` each)."""
    header = replace(text_header(Task.ASR), preprocessing=AudioPreprocessing(SAMPLE_RATE, 8.0, 3.0, 10.0))
    torch.manual_seed(0)
    model = build_model(header.model)
    state = {f"{MODEL_PREFIX}{key}": value for key, value in model.state_dict().items()}
    vocab, width = header.tokenizer.vocab_size, header.model.decoder_args["d_model"]
    if ctc_head:
        state |= {"ctc_head.project.weight": torch.randn(vocab, width), "ctc_head.project.bias": torch.zeros(vocab)}
    return write_checkpoint(path, header, state)
