"""Live transcription benchmark: the long-form benchmark's recordings fed to ``Transcriber.live`` as if live.

The recordings of ``longform_asr.py`` (20-40 held-out clips joined with 0.3-1.5 s pauses, in digital silence
and under -50 / -40 dBFS noise floors) arrive in 0.1 s pieces on a simulated clock: a piece is taken when it
has arrived and the transcriber is free, and the clock moves on by the compute time each piece costs, so the
run goes faster than real time where the machine allows while each commit is timed as a live listener would
see it. Per condition:

- ``offline_wer``: the Transcriber's defaults on the whole recordings (the long-form benchmark's ``vad``
  system); ``stream_wer``: the committed words at the end of each stream; ``wer_ratio`` (target <= 1.1);
- latency from a word's end in the audio (its aligned end) to its commit: median (target <= 2 chunks) and 90th
  percentile (target <= 3 chunks), in seconds and in chunks;
- ``compute_over_audio``: the time the transcriber took over the audio's length (target <= 0.5 on 2 cores);
- ``max_buffer_s`` against ``buffer_bound_s``; ``fell_behind``: streams whose lag warning fired.

Also the words committed on 30 s of silence or of noise alone, and with ``--chunk-sweep`` the silence
condition at other chunk lengths (latency and compute against chunk length).

    .venv/bin/python benchmarks/streaming_asr.py --checkpoint ESPEAK.ckpt [--corpus espeak|fsdd]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from longform_asr import (
    BATCH_SIZE,
    CONDITIONS,
    EMPTY_SECONDS,
    PERCENTILE,
    LongRecording,
    build_recordings,
    corpus_clips,
    noise_floor,
    write_report,
)

from multimodal_s2s.metrics.text import ErrorRates
from multimodal_s2s.pipelines import LiveOptions, Transcriber, TranscriptionOptions
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.threads import configure_threads

ROOT = Path(__file__).resolve().parents[1]
PIECE_SECONDS = 0.1  # a microphone's block
OFFLINE = TranscriptionOptions(batch_size=BATCH_SIZE, word_timestamps=True)


def simulate(transcriber: Transcriber, waveform: np.ndarray, chunk_seconds: float) -> dict:
    """Feed ``waveform`` as if live (see the module docstring): the transcript, each commit's latency (s),
    the compute time, the most audio buffered and whether the lag warning fired."""
    live = transcriber.live(live=LiveOptions(chunk_seconds=chunk_seconds))
    piece, clock, position, latencies, compute, warned = round(PIECE_SECONDS * SAMPLE_RATE), 0.0, 0, [], 0.0, False
    while True:
        done = position >= len(waveform)
        if not done:
            arrived = min(max(position + piece, int(clock * SAMPLE_RATE) // piece * piece), len(waveform))
            clock = max(clock, arrived / SAMPLE_RATE)
        started = time.perf_counter()
        update = live.finish() if done else live.feed(waveform[position:arrived])
        elapsed = time.perf_counter() - started
        clock, compute, warned = clock + elapsed, compute + elapsed, warned or update.warning is not None
        latencies += [clock - word.end for word in update.committed]
        if done:
            break
        position = arrived
    return {"transcript": live.transcript(), "latencies": latencies, "compute": compute,
            "max_buffer": live.max_buffer, "bound": live.bound, "behind": warned}


def stream_condition(transcriber: Transcriber, recordings: list[LongRecording], noisy: list[np.ndarray],
                     chunk_seconds: float) -> dict:
    """Every recording streamed at ``chunk_seconds``: WER, latency, compute, buffer (see the module docstring)."""
    rates, latencies, compute, audio, buffers, behind = ErrorRates(), [], 0.0, 0.0, [], 0
    for recording, waveform in zip(recordings, noisy, strict=True):
        run = simulate(transcriber, waveform, chunk_seconds)
        rates.update([run["transcript"].text], [[" ".join(recording.texts)]])
        latencies += run["latencies"]
        compute, audio = compute + run["compute"], audio + len(waveform) / SAMPLE_RATE
        buffers.append(run["max_buffer"])
        behind += run["behind"]
    median, high = (float(np.percentile(latencies, q)) for q in (50, PERCENTILE))
    return {
        "chunk_s": chunk_seconds,
        "stream_wer": round(rates.compute()["wer"], 2),
        "latency_median_s": round(median, 3), f"latency_p{PERCENTILE}_s": round(high, 3),
        "latency_median_chunks": round(median / chunk_seconds, 2),
        f"latency_p{PERCENTILE}_chunks": round(high / chunk_seconds, 2),
        "words_committed": len(latencies),
        "compute_over_audio": round(compute / audio, 4),
        "max_buffer_s": round(max(buffers) / SAMPLE_RATE, 3), "buffer_bound_s": round(run["bound"] / SAMPLE_RATE, 3),
        "fell_behind": behind,
    }


def score_condition(transcriber: Transcriber, recordings: list[LongRecording], dbfs: float | None,
                    chunk_seconds: list[float]) -> dict:
    """Offline WER, then the streams at each chunk length, on the recordings under noise floor ``dbfs``."""
    noisy = [r.waveform + noise_floor(len(r.waveform), dbfs, seed) for seed, r in enumerate(recordings)]
    offline = ErrorRates()
    offline.update([t.text for t in transcriber(noisy, options=OFFLINE)], [[" ".join(r.texts)] for r in recordings])
    offline_wer = round(offline.compute()["wer"], 2)
    result = {"offline_wer": offline_wer}
    for chunk in chunk_seconds:
        streamed = stream_condition(transcriber, recordings, noisy, chunk)
        streamed["wer_ratio"] = round(streamed["stream_wer"] / offline_wer, 2) if offline_wer else None
        result[f"chunk_{chunk:g}s"] = streamed
    return result


def empty_streams(transcriber: Transcriber, chunk_seconds: float) -> dict:
    """The words committed on 30 s of digital silence and of each noise floor alone."""
    samples = int(EMPTY_SECONDS * SAMPLE_RATE)
    return {
        name: simulate(transcriber, noise_floor(samples, dbfs, seed=1000), chunk_seconds)["transcript"].text
        for name, dbfs in CONDITIONS.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="an ASR checkpoint (espeak: tasks/asr/espeak.yaml)")
    parser.add_argument("--corpus", choices=("espeak", "fsdd"), default="espeak", help="whose held-out clips")
    parser.add_argument("--fsdd-root", default=str(ROOT.parent / "shared" / "data" / "fsdd"))
    parser.add_argument("--recordings", type=int, default=10, help="long recordings (longform_asr's first N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-seconds", type=float, default=LiveOptions.chunk_seconds)
    parser.add_argument("--chunk-sweep", type=float, nargs="*", default=[], metavar="S",
                        help="also these chunk lengths, in silence only")
    parser.add_argument("--threads", type=int, help="torch threads (default: mms2s transcribe's, configure_threads)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/streaming_asr.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        configure_threads()
    transcriber = Transcriber.from_checkpoint(args.checkpoint, device="cpu")
    recordings = build_recordings(corpus_clips(args.corpus, args.fsdd_root), args.recordings, args.seed)
    report = {
        "device": f"CPU: {platform.processor() or platform.machine()}", "threads": torch.get_num_threads(),
        "checkpoint": args.checkpoint, "corpus": args.corpus, "recordings": len(recordings),
        "audio_seconds": round(sum(len(r.waveform) for r in recordings) / SAMPLE_RATE, 1),
        "ctc_head": transcriber.ctc_head is not None,
    }
    report["conditions"] = {
        name: score_condition(transcriber, recordings, dbfs, [args.chunk_seconds, *(
            args.chunk_sweep if dbfs is None else [])])
        for name, dbfs in CONDITIONS.items()
    }
    report["silence_or_noise_alone"] = empty_streams(transcriber, args.chunk_seconds)
    write_report(report, Path(args.out))


if __name__ == "__main__":
    main()
