"""Where the voice activity detector's time goes: ways of running Silero VAD timed side by side on the same audio.

The recordings of ``longform_asr.py`` (held-out FSDD clips joined by 0.3-1.5 s pauses) in digital silence and
under a -50 dBFS noise floor. Each variant computes the speech probability of every 32 ms frame of every
recording; variants are timed in turn (best of ``--repeats``) and compared with ``package`` (how the
package runs its sequence model, ``SileroVADSequence``: one onnxruntime thread, one call per 512 frames;
what ``multimodal_s2s.speech.vad`` ran before ``silero_graph``): seconds per second of audio, the ratio to
``package``, the largest probability difference and how many recordings get other speech regions (the
VAD's default options).

- ``matmul``: what ``multimodal_s2s.speech.vad`` runs: ``silero_graph.SileroMatmul``, the same weights with the STFT
  and each convolution as one matrix product over a call's frames (one onnxruntime thread, 512 frames a call);
- ``threads_2``: two intra-op threads (a core that torch leaves idle while the VAD runs in turn);
  ``threads_2_no_spin``: the same without the thread pool's busy waiting;
- ``basic_graph_optimization``: onnxruntime's basic graph optimizations instead of all;
- ``blocks_2048``: one call per 2048 frames (65 s);
- ``per_frame_16k``: the package's op15 streaming model, one call per frame;
- ``per_frame_8k``: its 8 kHz branch on audio resampled to 8 kHz, one call per frame;
- ``skip_digital_silence``: runs of at least 0.5 s of frames below -80 dBFS RMS are not run through the
  model (probability 0); each stretch in between starts cold, 8 frames before its first audible frame.

    .venv/bin/python benchmarks/vad_speed.py --fsdd-root /work/shared/data/fsdd
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soxr
from longform_asr import build_recordings, corpus_clips, noise_floor, write_report
from silero_vad.sequence_vad import frame_blocks

from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.speech.silero_graph import SileroMatmul
from multimodal_s2s.speech.vad import (
    MODEL_PACKAGE,
    SEQUENCE_MODEL,
    VAD_FRAME_SAMPLES,
    VADOptions,
    VoiceActivityDetector,
    load_model,
)

ROOT = Path(__file__).resolve().parents[1]
STREAMING_MODEL = "silero_vad.onnx"  # both rates; the op15 file below is its 16 kHz export
STREAMING_16K_MODEL = "silero_vad_16k_op15.onnx"
STATE_SHAPE = (2, 1, 128)
QUIET_RMS = 1e-4  # -80 dBFS
QUIET_RUN_FRAMES = 16  # 0.5 s
COLD_START_FRAMES = 8
Probabilities = Callable[[np.ndarray], np.ndarray]  # (S,) 16 kHz -> (ceil(S / 512),)


def session(model: str, threads: int = 1, spin: bool = True, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.graph_optimization_level = threads, 1, level
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    with resources.as_file(resources.files(MODEL_PACKAGE).joinpath(model)) as path:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def sequence(onnx_session, max_frames: int = 512) -> Probabilities:
    """The sequence model run as silero-vad's ``SileroVADSequence.audio_forward`` runs it."""

    def run(audio: np.ndarray) -> np.ndarray:
        hidden = cell = np.zeros((1, 1, 128), dtype=np.float32)
        values = []
        for block in frame_blocks(audio, VAD_FRAME_SAMPLES, 64, max_frames):
            probabilities, hidden, cell = onnx_session.run(None, {"input": block, "h": hidden, "c": cell})
            values.append(probabilities.reshape(-1))
        return np.concatenate(values) if values else np.zeros(0, dtype=np.float32)

    return run


def per_frame(model: str, rate: int) -> Probabilities:
    """A streaming model, one onnxruntime call per frame (256 samples + 32 of context at 8 kHz)."""
    onnx_session, scale = session(model), SAMPLE_RATE // rate
    rate_input = np.array(rate, dtype=np.int64)

    def run(audio: np.ndarray) -> np.ndarray:
        if rate != SAMPLE_RATE:
            audio = soxr.resample(audio, SAMPLE_RATE, rate).astype(np.float32)
        state, values = np.zeros(STATE_SHAPE, dtype=np.float32), []
        for block in frame_blocks(audio, VAD_FRAME_SAMPLES // scale, 64 // scale, 1 << 30):
            for frame in block:
                probability, state = onnx_session.run(None, {"input": frame[None], "state": state, "sr": rate_input})
                values.append(probability.item())
        return np.asarray(values, dtype=np.float32)

    return run


def skipping_quiet(model: Probabilities) -> Probabilities:
    """``model`` run only on the stretches between runs of >= QUIET_RUN_FRAMES frames below QUIET_RMS."""

    def run(audio: np.ndarray) -> np.ndarray:
        frames = -(-len(audio) // VAD_FRAME_SAMPLES)
        padded = np.zeros(frames * VAD_FRAME_SAMPLES, dtype=np.float64)
        padded[: len(audio)] = audio
        quiet = np.sqrt((padded.reshape(frames, -1) ** 2).mean(axis=1)) < QUIET_RMS
        keep = np.zeros(frames, dtype=bool)
        for frame in np.flatnonzero(~quiet):  # audible frames and the cold start before them
            keep[max(frame - COLD_START_FRAMES, 0) : frame + 1] = True
        edges = np.flatnonzero(np.diff(np.r_[1, keep.astype(np.int8), 1]))
        for first, last in zip(edges[0::2], edges[1::2], strict=True):
            keep[first:last] |= last - first < QUIET_RUN_FRAMES  # short gaps are run through the model
        probabilities = np.zeros(frames, dtype=np.float32)
        edges = np.flatnonzero(np.diff(np.r_[0, keep.astype(np.int8), 0]))
        for first, last in zip(edges[0::2], edges[1::2], strict=True):
            probabilities[first:last] = model(audio[first * VAD_FRAME_SAMPLES : last * VAD_FRAME_SAMPLES])
        return probabilities

    return run


def matmul() -> SileroMatmul:
    """The suite's runner, as ``VoiceActivityDetector`` loads it (not the package's, which it falls back to)."""
    model = load_model()
    if not isinstance(model, SileroMatmul):
        raise SystemExit("the suite's VAD fell back to the package's runner: nothing to compare")
    return model


def variants() -> dict[str, Probabilities]:
    return {
        "package": sequence(session(SEQUENCE_MODEL)),
        "matmul": matmul().audio_forward,
        "threads_2": sequence(session(SEQUENCE_MODEL, threads=2)),
        "threads_2_no_spin": sequence(session(SEQUENCE_MODEL, threads=2, spin=False)),
        "basic_graph_optimization": sequence(
            session(SEQUENCE_MODEL, level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
        ),
        "blocks_2048": sequence(session(SEQUENCE_MODEL), max_frames=2048),
        "per_frame_16k": per_frame(STREAMING_16K_MODEL, SAMPLE_RATE),
        "per_frame_8k": per_frame(STREAMING_MODEL, 8000),
        "skip_digital_silence": skipping_quiet(sequence(session(SEQUENCE_MODEL))),
    }


def compare(waveforms: list[np.ndarray], repeats: int) -> dict:
    """Each variant's speed and agreement with ``package`` on ``waveforms`` (module docstring)."""
    runs, best = variants(), {}
    regions, outputs = VoiceActivityDetector(VADOptions()).speech_regions, {}
    for _ in range(repeats):  # variants in turn, so that all see the same machine load
        for name, run in runs.items():
            started = time.perf_counter()
            outputs[name] = [run(waveform) for waveform in waveforms]
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
    audio_seconds = sum(len(w) for w in waveforms) / SAMPLE_RATE
    return {
        name: {
            "seconds_per_audio_second": round(best[name] / audio_seconds, 6),
            "ratio_to_package": round(best[name] / best["package"], 3),
        }
        | agreement(waveforms, probabilities, outputs["package"], regions)
        for name, probabilities in outputs.items()
    }


def agreement(waveforms: list[np.ndarray], probabilities: list[np.ndarray], reference: list[np.ndarray], regions):
    """The largest probability difference from ``reference`` and how many recordings get other regions."""
    pairs = [(p[: len(q)], q[: len(p)]) for p, q in zip(probabilities, reference, strict=True)]
    return {
        "max_probability_difference": round(max(float(np.abs(p - q).max()) for p, q in pairs), 4),
        "recordings_with_other_regions": sum(
            regions(w, p) != regions(w, q) for w, (p, q) in zip(waveforms, pairs, strict=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fsdd-root", default=str(ROOT.parent / "shared" / "data" / "fsdd"))
    parser.add_argument("--recordings", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/vad_speed.json"))
    args = parser.parse_args()
    recordings = build_recordings(corpus_clips("fsdd", args.fsdd_root), args.recordings, seed=0)
    report = {"audio_seconds": round(sum(len(r.waveform) for r in recordings) / SAMPLE_RATE, 1)}
    for condition, dbfs in {"silence": None, "noise_-50dBFS": -50.0}.items():
        waveforms = [r.waveform + noise_floor(len(r.waveform), dbfs, seed) for seed, r in enumerate(recordings)]
        report[condition] = compare(waveforms, args.repeats)
    write_report(report, Path(args.out))


if __name__ == "__main__":
    main()
