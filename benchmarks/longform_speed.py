"""Speed of ``Transcriber`` with and without voice activity detection, measured side by side.

On the same recordings, configurations timed in turn (``repeats`` rounds), the whole list of recordings
transcribed in one call as ``mms2s transcribe`` does:

- ``energy``: the energy window splitter (no VAD);
- ``vad``: the default: Silero VAD windows (read ahead in a background thread only where a core is spare:
  ``Transcriber.read_ahead_seconds``);
- ``vad_in_turn``: ``read_ahead_seconds=0``: each recording's VAD runs before its windows decode;
- ``vad_read_ahead``: ``read_ahead_seconds=600``: the VAD runs in a background thread while windows decode;
- ``vad_windows_ready``: the same VAD windows handed in ready-made: the decoding without the VAD's cost;
- ``vad_alone``: the VAD's windows of every recording, nothing decoded.

``vad_cost_share`` = (vad - vad_windows_ready) / vad: the share of transcription time that the VAD costs
(the issue's target: at most 10%), the median over the rounds of each round's share. Two models: the
checkpoint's (with its checks and fallback) and a random-weight model of the espeak recipe's size
(``tasks/asr/espeak.yaml``, 144-wide, 4 + 2 layers; checks off, since random weights fail every check; it
never stops early, so each window decodes to its token limit).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from multimodal_s2s.checkpoint import (
    MODEL_PREFIX,
    AudioPreprocessing,
    Checkpoint,
    CheckpointHeader,
    DecodingDefaults,
    Task,
    TrainingData,
)
from multimodal_s2s.models import ModelConfig, build_model
from multimodal_s2s.pipelines import Transcriber, TranscriptionOptions
from multimodal_s2s.pipelines.transcription_options import PLAIN_DECODING, READ_AHEAD_SECONDS
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.tokenizers.vocabulary import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
ESPEAK_RECIPE = ROOT / "tasks/asr/espeak.yaml"
#: What a checkpoint of the espeak recipe records about its data (longest and median utterance, most characters
#: per second), for the random-weight model's windows and token limits.
ESPEAK_AUDIO = AudioPreprocessing(SAMPLE_RATE, max_seconds=6.0, median_seconds=2.5, tokens_per_second=16.0)
CHARACTERS = "abcdefghijklmnopqrstuvwxyz '"


def espeak_sized_transcriber() -> Transcriber:
    """A random-weight model of the espeak recipe's size with a character tokenizer, as a loaded checkpoint."""
    arguments = yaml.safe_load(ESPEAK_RECIPE.read_text())["model"]["init_args"]
    tokenizer = CharTokenizer.train([CHARACTERS])
    config = ModelConfig(arguments["encoder"], arguments["decoder"], arguments["encoder_args"],
                         arguments["decoder_args"], tokenizer.vocab_size)
    state = {f"{MODEL_PREFIX}{key}": value for key, value in build_model(config).state_dict().items()}
    header = CheckpointHeader(Task.ASR, config, TrainingData("espeak-sized, random weights"), ESPEAK_AUDIO,
                              tokenizer=tokenizer, decoding=DecodingDefaults(beam_size=1))
    return Transcriber(Checkpoint(Path("<random weights>"), header, state), device="cpu")


def configurations(transcriber: Transcriber, waveforms: list[np.ndarray], base: TranscriptionOptions) -> dict:
    """The options of each configuration of the module docstring (the VAD's windows computed once here)."""
    ready = {len(waveform): transcriber.windows(waveform, base) for waveform in waveforms}
    if len(ready) != len(waveforms):
        raise ValueError("the recordings must differ in length (their ready-made windows are found by length)")
    return {
        "energy": replace(base, windows="energy"),
        "vad": base,
        "vad_in_turn": replace(base, read_ahead_seconds=0.0),
        "vad_read_ahead": replace(base, read_ahead_seconds=READ_AHEAD_SECONDS),
        "vad_windows_ready": replace(base, windows=lambda waveform: ready[len(waveform)]),
    }


def seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(transcriber: Transcriber, waveforms: list[np.ndarray], base: TranscriptionOptions, repeats: int) -> dict:
    """Real-time factors of each configuration (best of ``repeats``, timed in turn) and the VAD's cost shares
    (module docstring), each the median over the repeats of the share within one repeat: on this shared
    machine the speed drifts by up to 20% between minutes, less between configurations timed one after the
    other."""
    options = configurations(transcriber, waveforms, base)
    timings: dict[str, list[float]] = {name: [] for name in [*options, "vad_alone"]}
    for _ in range(repeats):  # configurations in turn, so that all see the same machine load
        for name, chosen in options.items():
            timings[name].append(seconds(lambda chosen=chosen: transcriber(waveforms, options=chosen)))
        timings["vad_alone"].append(seconds(lambda: [transcriber.windows(w) for w in waveforms]))
    audio_seconds = sum(len(w) for w in waveforms) / SAMPLE_RATE
    runs = {name: np.array(values) for name, values in timings.items()}

    def share(with_vad: str) -> float:
        return round(float(np.median((runs[with_vad] - runs["vad_windows_ready"]) / runs[with_vad])), 3)

    return {f"{name}_rtf": round(values.min() / audio_seconds, 5) for name, values in runs.items()} | {
        "parameters": sum(p.numel() for p in transcriber.model.parameters()),
        "vad_cost_share": share("vad"),
        "vad_cost_share_in_turn": share("vad_in_turn"),
        "vad_cost_share_read_ahead": share("vad_read_ahead"),
        "read_ahead_seconds_by_default": transcriber.read_ahead_seconds(base),
        "vad_alone_share_of_vad": round(float(np.median(runs["vad_alone"] / runs["vad"])), 3),
    }


def speed_report(transcriber: Transcriber, waveforms: list[np.ndarray], repeats: int) -> dict:
    """``measure`` with the checkpoint (default options) and with the espeak-sized random model (checks off)."""
    return {
        "audio_seconds": round(sum(len(w) for w in waveforms) / SAMPLE_RATE, 1),
        "repeats": repeats,
        "checkpoint": measure(transcriber, waveforms, TranscriptionOptions(), repeats),
        "espeak_sized_random": measure(
            espeak_sized_transcriber(), waveforms, replace(PLAIN_DECODING, windows="vad"), repeats
        ),
    }
