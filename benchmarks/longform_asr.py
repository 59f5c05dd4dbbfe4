"""Long-form ASR benchmark: held-out clips joined into long recordings, in silence and under a noise floor.

From a corpus's held-out utterances (FSDD recordings 5-9; with ``--espeak-checkpoint``, the espeak corpus's
test sentences), each long recording joins 20-40 clips with random 0.3-1.5 s pauses (and one before and
after), with digital silence, a -50 dBFS and a -40 dBFS white-noise floor. Two systems transcribe them:

- ``energy``: ``pipelines.Transcriber``'s energy window splitter and decoding, segment times only
  (each word gets its segment's start): transcription as it was before voice activity detection.
- ``vad``: Silero VAD windows (``vad``), whisper's checks and fallback (``fallback``) and word timestamps
  (``alignment``: CTC forced alignment with the checkpoint's CTC head, else cross-attention DTW).

Per condition and system: the long-form WER, the WER of the same clips (with the same noise) decoded one
by one, their ratio, and the median and 90th percentile of |word start - clip start| over the correctly
recognized first words of the clips. Also what each system makes of 30 s of silence or of noise alone, and
the real-time factor of both window splitters with the same plain decoding, and of the full ``vad`` system,
timed in turn on the same recordings, with the VAD's share of its time.

``transcribe`` is the one function that turns a waveform into timed segments: point it at another
transcriber to benchmark that.

    .venv/bin/python benchmarks/longform_asr.py --checkpoint FSDD.ckpt [--espeak-checkpoint ESPEAK.ckpt]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import torch
from window_decoding import ALIGNMENTS, TimedSegment, decode_windows

from multimodal_s2s.audio import SAMPLE_RATE, load_audio
from multimodal_s2s.data.asr import ASRDataModule, read_fsdd
from multimodal_s2s.metrics.text import ErrorRates, normalize_transcript
from multimodal_s2s.pipelines import Transcriber
from multimodal_s2s.vad import VoiceActivityDetector

ROOT = Path(__file__).resolve().parents[1]
FSDD_HELD_OUT = (5, 9)  # not trained on by tasks/asr/fsdd.yaml (recordings 10-49)
CONDITIONS = {"silence": None, "noise_-50dBFS": -50.0, "noise_-40dBFS": -40.0}
SYSTEMS = ("energy", "vad")
PAUSE_SECONDS = (0.3, 1.5)
EMPTY_SECONDS = 30.0
BATCH_SIZE = 8
PERCENTILE = 90


@dataclass
class LongRecording:
    waveform: np.ndarray  # (S,)
    texts: list[str]  # each clip's transcript
    clip_bounds: list[tuple[int, int]]  # each clip's samples


def transcribe(
    recognizer: Transcriber, vad: VoiceActivityDetector, waveform: np.ndarray, system: str, alignment: str = "auto"
):
    """``waveform`` (S,) -> timed segments by ``system``: "energy" or "vad" (see the module docstring), or
    "energy-plain" / "vad-plain": those windows with plain decoding (no checks, no word timestamps).
    ``alignment``: "auto" (CTC where the checkpoint has a CTC head), "ctc" or "attention"."""
    if system.startswith("energy"):
        windows = recognizer.windows(waveform)
    else:
        windows = vad.windows(waveform, recognizer.max_seconds, min(recognizer.merge_seconds, recognizer.max_seconds))
    full = system == "vad"
    segments: list[TimedSegment] = []
    for first in range(0, len(windows), BATCH_SIZE):
        batch = windows[first : first + BATCH_SIZE]
        segments += decode_windows(recognizer, waveform, batch, full, full, alignment)
    return segments


def build_recordings(clips: list[tuple[np.ndarray, str]], count: int, sizes: tuple[int, int], seed: int):
    """``count`` recordings of sizes[0]..sizes[1] clips, each clip used once while they last."""
    rng = np.random.default_rng(seed)
    order, recordings = [], []
    for _ in range(count):
        size = int(rng.integers(sizes[0], sizes[1] + 1))
        while len(order) < size:
            order += rng.permutation(len(clips)).tolist()
        chosen, order = order[:size], order[size:]
        parts, bounds, position = [], [], 0
        for index in [*chosen, None]:
            parts.append(np.zeros(int(rng.uniform(*PAUSE_SECONDS) * SAMPLE_RATE), dtype=np.float32))
            position += len(parts[-1])
            if index is not None:
                parts.append(clips[index][0])
                bounds.append((position, position + len(parts[-1])))
                position += len(parts[-1])
        recordings.append(LongRecording(np.concatenate(parts), [clips[i][1] for i in chosen], bounds))
    return recordings


def noise_floor(samples: int, dbfs: float | None, seed: int) -> np.ndarray:
    """(samples,) white noise of RMS ``dbfs`` relative to full scale; zeros for None (digital silence)."""
    if dbfs is None:
        return np.zeros(samples, dtype=np.float32)
    return (np.random.default_rng(seed).standard_normal(samples) * 10 ** (dbfs / 20)).astype(np.float32)


def timed_words(segments: list[TimedSegment]) -> list[tuple[str, float]]:
    """(normalized word, start) of every word; a segment without word times gives each word its start."""
    words = []
    for segment in segments:
        timed = [(w.word, w.start) for w in segment.words] or [(w, segment.start) for w in segment.text.split()]
        words += [(normalize_transcript(word), start) for word, start in timed if normalize_transcript(word)]
    return words


def start_errors(recording: LongRecording, words: list[tuple[str, float]]) -> list[float]:
    """|start - clip start| (s) of each clip's first word that the hypothesis has right (aligned as for WER)."""
    reference, first_word_clip = [], {}
    for clip, text in enumerate(recording.texts):
        first_word_clip[len(reference)] = clip
        reference += normalize_transcript(text).split()
    if not words:
        return []
    errors = []
    for chunk in jiwer.process_words(" ".join(reference), " ".join(w for w, _ in words)).alignments[0]:
        for offset in range(chunk.ref_end_idx - chunk.ref_start_idx if chunk.type == "equal" else 0):
            clip = first_word_clip.get(chunk.ref_start_idx + offset)
            if clip is not None:
                clip_start = recording.clip_bounds[clip][0] / SAMPLE_RATE
                errors.append(abs(words[chunk.hyp_start_idx + offset][1] - clip_start))
    return errors


def per_clip_wer(recognizer: Transcriber, recordings: list[LongRecording], noisy: list[np.ndarray]) -> float:
    """WER of every clip decoded on its own, cut from its noisy recording (its noise, no pauses)."""
    rates = ErrorRates()
    for recording, waveform in zip(recordings, noisy, strict=True):
        clips = [waveform[start:end] for start, end in recording.clip_bounds]
        for first in range(0, len(clips), BATCH_SIZE):
            texts = recognizer.recognize(clips[first : first + BATCH_SIZE])
            rates.update(texts, [[text] for text in recording.texts[first : first + BATCH_SIZE]])
    return rates.compute()["wer"]


def score_condition(recognizer, vad, recordings: list[LongRecording], dbfs: float | None, alignment: str) -> dict:
    noisy = [r.waveform + noise_floor(len(r.waveform), dbfs, seed) for seed, r in enumerate(recordings)]
    clip_wer = per_clip_wer(recognizer, recordings, noisy)
    result = {"per_clip_wer": round(clip_wer, 2)}
    for system in SYSTEMS:
        rates, errors = ErrorRates(), []
        for recording, waveform in zip(recordings, noisy, strict=True):
            segments = transcribe(recognizer, vad, waveform, system, alignment)
            rates.update([" ".join(s.text for s in segments)], [[" ".join(recording.texts)]])
            errors += start_errors(recording, timed_words(segments))
        wer = rates.compute()["wer"]
        result[system] = {
            "long_form_wer": round(wer, 2),
            "wer_ratio": round(wer / clip_wer, 2) if clip_wer else None,
            "start_error_median_s": round(float(np.median(errors)), 3) if errors else None,
            f"start_error_p{PERCENTILE}_s": round(float(np.percentile(errors, PERCENTILE)), 3) if errors else None,
            "first_words_timed": len(errors),
        }
    return result


def empty_inputs(recognizer, vad) -> dict:
    """What each system transcribes from 30 s of digital silence and of noise alone."""
    samples = int(EMPTY_SECONDS * SAMPLE_RATE)
    report = {}
    for name, dbfs in CONDITIONS.items():
        waveform = noise_floor(samples, dbfs, seed=1000)
        report[name] = {
            system: " ".join(s.text for s in transcribe(recognizer, vad, waveform, system)) for system in SYSTEMS
        }
    return report


def real_time_factors(recognizer, vad, recordings: list[LongRecording], repeats: int) -> dict:
    """Seconds per second of audio of each system (best of ``repeats``, systems in turn), and the VAD's
    share of the full ``vad`` system's time."""
    audio_seconds = sum(len(r.waveform) for r in recordings) / SAMPLE_RATE
    systems = ("energy-plain", "vad-plain", "vad")
    best = dict.fromkeys(systems, float("inf"))
    best_vad = float("inf")
    for _ in range(repeats):
        for system in systems:
            started = time.perf_counter()
            for recording in recordings:
                transcribe(recognizer, vad, recording.waveform, system)
            best[system] = min(best[system], time.perf_counter() - started)
        started = time.perf_counter()
        for recording in recordings:
            vad.speech_probabilities(recording.waveform)
        best_vad = min(best_vad, time.perf_counter() - started)
    report = {f"{system}_rtf": round(best[system] / audio_seconds, 5) for system in systems}
    return report | {
        "vad_only_rtf": round(best_vad / audio_seconds, 5),
        "vad_share_of_vad": round(best_vad / best["vad"], 3),
    }


def corpus_clips(corpus: str, root: str) -> list[tuple[np.ndarray, str]]:
    if corpus == "fsdd":
        utterances = read_fsdd(root, FSDD_HELD_OUT)
    else:
        data = ASRDataModule(format="espeak")
        utterances = data.read_split("test")
    return [(load_audio(u.audio_path), u.text) for u in utterances]


def run_corpus(checkpoint: str, corpus: str, args: argparse.Namespace) -> dict:
    recognizer = Transcriber.from_checkpoint(checkpoint, device="cpu")
    vad = VoiceActivityDetector()
    recordings = build_recordings(corpus_clips(corpus, args.fsdd_root), args.recordings, (20, 40), args.seed)
    report = {
        "checkpoint": checkpoint, "recordings": len(recordings), "clips": sum(len(r.texts) for r in recordings),
        "audio_seconds": round(sum(len(r.waveform) for r in recordings) / SAMPLE_RATE, 1),
        "ctc_head": recognizer.ctc_head is not None, "alignment": args.alignment,
    }  # fmt: skip
    report["conditions"] = {
        name: score_condition(recognizer, vad, recordings, db, args.alignment) for name, db in CONDITIONS.items()
    }
    report["silence_or_noise_alone"] = empty_inputs(recognizer, vad)
    report["speed"] = real_time_factors(recognizer, vad, recordings, args.repeats)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="an FSDD checkpoint (tasks/asr/fsdd.yaml)")
    parser.add_argument("--espeak-checkpoint", help="an espeak checkpoint (tasks/asr/espeak.yaml): adds its test set")
    parser.add_argument("--fsdd-root", default=str(ROOT.parent / "shared" / "data" / "fsdd"))
    parser.add_argument("--recordings", type=int, default=8, help="long recordings per corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alignment", default="auto", choices=ALIGNMENTS, help="word timestamps from")
    parser.add_argument("--repeats", type=int, default=2, help="speed runs of each system (the best counts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/longform_asr.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"device": f"CPU: {platform.processor() or platform.machine()}", "threads": args.threads}
    report["fsdd"] = run_corpus(args.checkpoint, "fsdd", args)
    if args.espeak_checkpoint:
        report["espeak"] = run_corpus(args.espeak_checkpoint, "espeak", args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
