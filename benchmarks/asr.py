"""ASR benchmark: FSDD digits, librispeech-mini held-out speakers, and transcription speed against whisper tiny.

Parts (``--parts``, all by default), each written into one JSON report with the device and budgets:

- ``fsdd``: ``mms2s fit --config tasks/asr/fsdd.yaml`` (train on recordings 10-49), then the best
  checkpoint transcribes recordings 5-9 through ``Transcriber``: digit accuracy (the normalized
  transcript is exactly the digit word) and WER.
- ``librispeech``: ``tasks/asr/librispeech_mini.yaml`` (20 speakers) under a wall-clock budget
  (``--librispeech-minutes``), then WER and CER on the 4 held-back speakers.
- ``rtf``: transcription real-time factor on the CPU, in the same run and on the same recording (held-out
  librispeech-mini utterances joined with pauses, ``--rtf-seconds`` long): our transcription path
  (windows at silences, log-mel, batched greedy decoding) with a random-weight model of about whisper
  tiny's parameter count, and openai-whisper's ``tiny`` architecture built from its dimensions with random
  weights (log-mel, 30 s windows in sequence, greedy decoding with its KV cache). Random weights never
  stop on their own, so both decode exactly the tokens that the reference transcript needs in their own
  tokenizer, spread over the windows by duration (ours rounds up per batch of windows).

    .venv/bin/python benchmarks/asr.py [--parts fsdd,librispeech,rtf] [--out benchmarks/results/asr.json]

A run of some parts updates those parts of an existing report and keeps the others.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from multimodal_s2s.apps.training import max_time, suite_cli
from multimodal_s2s.checkpoint import (
    MODEL_PREFIX,
    AudioPreprocessing,
    Checkpoint,
    CheckpointHeader,
    DecodingDefaults,
    Task,
    TrainingData,
)
from multimodal_s2s.data.asr import ASRDataModule, read_librispeech
from multimodal_s2s.decoding import DecodingOptions
from multimodal_s2s.metrics.text import ErrorRates, normalize_transcript
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.pipelines import Transcriber
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE, load_audio
from multimodal_s2s.tokenizers import BPETokenizer

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
HELD_OUT_SPEAKERS = ["1970", "2136", "4640", "6848"]  # as in tasks/asr/librispeech_mini.yaml
RTF_PAUSE_SECONDS = 0.5
RTF_BPE_VOCAB = 1000
RTF_BATCH_SIZE = 8
#: Our model for the speed comparison, of whisper tiny's parameter count: 14 + 4 layers of width 384 (whisper
#: tiny: 4 + 4 of width 384, half its parameters in the 51,865-token embedding), 8x conv subsampling with
#: 64 channels (whisper: 2x, after two 384-channel 1-D convolutions).
RTF_ENCODER = (
    "audio_transformer_small",
    {"d_model": 384, "num_layers": 14, "num_heads": 6, "dropout": 0.0, "conv_channels": 64, "subsampling": 8},
)
RTF_DECODER = ("transformer", {"d_model": 384, "num_layers": 4, "num_heads": 6, "ff_dim": 1536, "dropout": 0.0})
WHISPER_TINY_DIMS = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
    "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4,
}


def train_recipe(recipe: str, overrides: list[str]) -> tuple[Path, float]:
    """``mms2s fit --config recipe overrides...``: the best checkpoint and the training wall time (s)."""
    started = time.perf_counter()
    cli = suite_cli(["fit", "--config", str(ROOT / recipe), *overrides])
    best = cli.trainer.checkpoint_callback.best_model_path or cli.trainer.checkpoint_callback.last_model_path
    return Path(best), time.perf_counter() - started


def evaluate(checkpoint: Path, utterances, beam_size: int | None = None) -> dict[str, float]:
    """WER / CER (percent) and exact-match accuracy of transcribing ``utterances`` with ``checkpoint``."""
    transcriber = Transcriber.from_checkpoint(checkpoint, device="cpu")
    transcripts = transcriber([utterance.audio_path for utterance in utterances], beam_size=beam_size)
    rates, exact = ErrorRates(), 0
    for utterance, transcript in zip(utterances, transcripts, strict=True):
        text = transcript.text
        rates.update([text], [[utterance.text]])
        exact += normalize_transcript(text) == normalize_transcript(utterance.text)
    return {**rates.compute(), "exact_match": 100 * exact / len(utterances), "utterances": len(utterances)}


def fsdd_part(minutes: float, checkpoint: str | None = None, root: Path = SHARED_DATA / "fsdd") -> dict:
    """Train the FSDD recipe for ``minutes`` (or take ``checkpoint``) and score it on recordings 5-9 of ``root``."""
    seconds = None
    if checkpoint is None:
        checkpoint, seconds = train_recipe("tasks/asr/fsdd.yaml", [f"--trainer.max_time={max_time(minutes)}"])
    data = ASRDataModule(format="fsdd", root=str(root))
    data.setup("validate")
    scores = evaluate(Path(checkpoint), data.splits["val"])
    return {
        "train": "recordings 10-49 (2400)", "test": "recordings 5-9 (300)", "checkpoint": str(checkpoint),
        "train_seconds": seconds if seconds is None else round(seconds), "digit_accuracy": scores["exact_match"],
        "wer": scores["wer"], "cer": scores["cer"],
    }


def librispeech_part(minutes: float) -> dict:
    overrides = [f"--trainer.max_time={max_time(minutes)}"] if minutes < 60 else []
    checkpoint, seconds = train_recipe("tasks/asr/librispeech_mini.yaml", overrides)
    held_out = read_librispeech(SHARED_DATA / "librispeech-mini", speakers=set(HELD_OUT_SPEAKERS))
    scores = evaluate(checkpoint, held_out)
    return {
        "train": "20 speakers", "test": f"held-back speakers {', '.join(HELD_OUT_SPEAKERS)}",
        "budget_minutes": minutes, "train_seconds": round(seconds), "checkpoint": str(checkpoint), **scores,
    }


def rtf_recording(seconds: float) -> tuple[np.ndarray, str, list[str]]:
    """Held-out librispeech-mini utterances joined with pauses: waveform, its transcript, training texts."""
    root = SHARED_DATA / "librispeech-mini"
    held_out = read_librispeech(root, speakers=set(HELD_OUT_SPEAKERS))
    pause = np.zeros(int(RTF_PAUSE_SECONDS * SAMPLE_RATE), dtype=np.float32)
    parts, texts, total = [], [], 0.0
    for utterance in held_out:
        if total >= seconds:
            break
        parts += [load_audio(utterance.audio_path), pause]
        texts.append(utterance.text.lower())
        total += utterance.duration + RTF_PAUSE_SECONDS
    training = [u.text.lower() for u in read_librispeech(root) if u.speaker not in HELD_OUT_SPEAKERS]
    return np.concatenate(parts), " ".join(texts), training


def our_recognizer(training_texts: list[str]) -> Transcriber:
    """A random-weight model of the benchmark size with a BPE tokenizer, as a loaded checkpoint would be."""
    tokenizer = BPETokenizer.train(training_texts, vocab_size=RTF_BPE_VOCAB)
    config = ModelConfig(RTF_ENCODER[0], RTF_DECODER[0], RTF_ENCODER[1], RTF_DECODER[1], tokenizer.vocab_size)
    model = build_model(config)
    header = CheckpointHeader(
        Task.ASR, config, TrainingData("librispeech-mini texts (random weights)"),
        AudioPreprocessing(SAMPLE_RATE, max_seconds=30.0, median_seconds=30.0, tokens_per_second=10.0),
        tokenizer=tokenizer, decoding=DecodingDefaults(beam_size=1),
    )
    state = {f"{MODEL_PREFIX}{key}": value for key, value in model.state_dict().items()}
    return Transcriber(Checkpoint(Path("<random weights>"), header, state), device="cpu")


def time_ours(recognizer: Transcriber, waveform: np.ndarray, total_tokens: int) -> tuple[float, int]:
    """Seconds to transcribe ``waveform`` (windows, features, encoder, decoding), and the windows."""
    started = time.perf_counter()
    windows = recognizer.windows(waveform)
    speech_samples = sum(end - start for start, end in windows)
    for first in range(0, len(windows), RTF_BATCH_SIZE):
        batch = windows[first : first + RTF_BATCH_SIZE]
        longest = max(end - start for start, end in batch)
        tokens = max(math.ceil(total_tokens * longest / speech_samples), 1)
        options = DecodingOptions(max_length=tokens + 1, min_length=tokens)  # EOS banned until `tokens`
        recognizer.recognize([waveform[start:end] for start, end in batch], options=options)
    return time.perf_counter() - started, len(windows)


def time_whisper(model, waveform: np.ndarray, total_tokens: int, sot: list[int]) -> tuple[float, int]:
    """Seconds for whisper's long-form loop: 30 s windows in sequence, greedy decoding with the KV cache."""
    import whisper

    started = time.perf_counter()
    windows = math.ceil(len(waveform) / whisper.audio.N_SAMPLES)
    per_window = math.ceil(total_tokens / windows)
    with torch.no_grad():
        for index in range(windows):
            chunk = torch.from_numpy(waveform[index * whisper.audio.N_SAMPLES : (index + 1) * whisper.audio.N_SAMPLES])
            mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(chunk))[None]  # (1, 80, 3000)
            features = model.encoder(mel)
            cache, hooks = model.install_kv_cache_hooks()
            step_input = torch.tensor([sot])
            for _ in range(per_window):
                logits = model.decoder(step_input, features, kv_cache=cache)[:, -1]  # (1, n_vocab)
                step_input = logits.argmax(dim=-1, keepdim=True)
            for hook in hooks:
                hook.remove()
    return time.perf_counter() - started, windows


def rtf_part(seconds: float, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    try:
        import whisper
        from whisper.model import ModelDimensions, Whisper
    except ImportError:
        return {"skipped": "openai-whisper is not installed (pip install openai-whisper)"}
    waveform, transcript, training_texts = rtf_recording(seconds)
    ours = our_recognizer(training_texts)
    theirs = Whisper(ModelDimensions(**WHISPER_TINY_DIMS)).eval()
    whisper_tokenizer = whisper.tokenizer.get_tokenizer(multilingual=True, language="en", task="transcribe")
    our_tokens = len(ours.pipeline.tokenizer.encode(transcript))
    whisper_tokens = len(whisper_tokenizer.encode(" " + transcript))
    our_times, whisper_times = [], []
    for _ in range(repeats):  # interleaved, so that both see the same machine load
        our_seconds, our_windows = time_ours(ours, waveform, our_tokens)
        whisper_seconds, whisper_windows = time_whisper(
            theirs, waveform, whisper_tokens, list(whisper_tokenizer.sot_sequence_including_notimestamps)
        )
        our_times.append(our_seconds)
        whisper_times.append(whisper_seconds)
    audio_seconds = len(waveform) / SAMPLE_RATE
    our_rtf, whisper_rtf = min(our_times) / audio_seconds, min(whisper_times) / audio_seconds
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    return {
        "audio_seconds": round(audio_seconds, 1), "threads": torch.get_num_threads(), "repeats": repeats,
        "ours": {"rtf": round(our_rtf, 4), "parameters": count(ours.model), "windows": our_windows,
                 "tokens": our_tokens, "encoder": RTF_ENCODER, "decoder": RTF_DECODER, "vocab": RTF_BPE_VOCAB},
        "whisper_tiny": {"rtf": round(whisper_rtf, 4), "parameters": count(theirs), "windows": whisper_windows,
                         "tokens": whisper_tokens, "dims": WHISPER_TINY_DIMS},
        "speedup": round(whisper_rtf / our_rtf, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="fsdd,librispeech,rtf", help="comma-separated: fsdd, librispeech, rtf")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/asr.json"))
    parser.add_argument("--fsdd-minutes", type=float, default=10, help="training budget of the FSDD recipe")
    parser.add_argument("--fsdd-checkpoint", help="score this FSDD checkpoint instead of training one")
    parser.add_argument("--fsdd-root", default=str(SHARED_DATA / "fsdd"), help="FSDD recordings to score on")
    parser.add_argument("--librispeech-minutes", type=float, default=30, help="training budget (>= 60: none)")
    parser.add_argument("--rtf-seconds", type=float, default=120, help="length of the speed-test recording")
    parser.add_argument("--repeats", type=int, default=2, help="speed runs of each system (the best counts)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the speed test")
    args = parser.parse_args()
    out = Path(args.out)
    # A run of some parts updates those parts of an earlier report and keeps the others.
    report = json.loads(out.read_text()) if out.exists() else {}
    report |= {"device": f"CPU: {platform.processor() or platform.machine()}", "torch": torch.__version__}
    parts = {part.strip() for part in args.parts.split(",")}
    runs = [
        ("rtf", "transcription_speed", lambda: rtf_part(args.rtf_seconds, args.repeats, args.threads)),
        ("fsdd", "fsdd", lambda: fsdd_part(args.fsdd_minutes, args.fsdd_checkpoint, Path(args.fsdd_root))),
        ("librispeech", "librispeech_mini", lambda: librispeech_part(args.librispeech_minutes)),
    ]
    for part, key, run in runs:
        if part in parts:
            report[key] = run()
            write_report(report, out)  # after every part, so that a later failure keeps the others


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
