"""Long-form ASR benchmark: held-out clips joined into long recordings, in silence and under a noise floor,
transcribed by ``multimodal_s2s.Transcriber``.

From a corpus's held-out utterances (FSDD recordings 5-9; with ``--espeak-checkpoint``, the espeak corpus's
test sentences), each long recording joins 20-40 clips with random 0.3-1.5 s pauses (and one before and
after), with digital silence, a -50 dBFS and a -40 dBFS white-noise floor. Two systems transcribe them:

- ``energy``: the energy window splitter, every window's first decoding kept, segment times only (each
  word gets its segment's start): transcription as it was before voice activity detection.
- ``vad``: the Transcriber's defaults (Silero VAD windows padded after speech as much as the checkpoint's
  training silence, at least 0.1 s, the pads reported as ``vad_pads_s``; whisper's checks and fallback)
  with word timestamps (CTC forced alignment with the checkpoint's CTC head, else cross-attention DTW).
- ``vad_pad_after_S`` (``--vad-pad-after S ...``): ``vad`` with S seconds of padding after speech.

Per condition and system: the long-form WER, the WER of the same clips (with the same noise) decoded one
by one and whole (``Transcriber.recognize``), their ratio, and the median and 90th percentile of |word
start - clip start| over the correctly recognized first words of the clips; with ``--details``, each clip
that the long-form transcript gets wrong and the one-by-one decoding gets right. Also what each system
makes of 30 s of silence or of noise alone, and the speed of the Transcriber with and without the VAD
(``longform_speed``), with ``mms2s transcribe``'s torch threads unless ``--threads`` says otherwise (on 2
cores one thread decodes and the VAD reads ahead on the other core).

    .venv/bin/python benchmarks/longform_asr.py --checkpoint FSDD.ckpt [--espeak-checkpoint ESPEAK.ckpt]
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import dataclass, replace
from pathlib import Path

import jiwer
import numpy as np
import torch
from longform_speed import speed_report

from multimodal_s2s.data.asr import ASRDataModule, read_fsdd
from multimodal_s2s.metrics.text import ErrorRates, normalize_transcript
from multimodal_s2s.pipelines import Transcriber, Transcript, TranscriptionOptions
from multimodal_s2s.pipelines.transcription_options import ALIGNMENTS, PLAIN_DECODING
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE, load_audio
from multimodal_s2s.speech.vad import VADOptions
from multimodal_s2s.threads import configure_threads

ROOT = Path(__file__).resolve().parents[1]
FSDD_HELD_OUT = (5, 9)  # not trained on by tasks/asr/fsdd.yaml (recordings 10-49)
CONDITIONS = {"silence": None, "noise_-50dBFS": -50.0, "noise_-40dBFS": -40.0}
PAUSE_SECONDS = (0.3, 1.5)
CLIPS_PER_RECORDING = (20, 40)
EMPTY_SECONDS = 30.0
BATCH_SIZE = 8
PERCENTILE = 90


@dataclass
class LongRecording:
    waveform: np.ndarray  # (S,)
    texts: list[str]  # each clip's transcript
    clip_bounds: list[tuple[int, int]]  # each clip's samples


def systems(alignment: str, pads_after: list[float]) -> dict[str, TranscriptionOptions]:
    """The options of each system (see the module docstring)."""
    vad = TranscriptionOptions(batch_size=BATCH_SIZE, word_timestamps=True, alignment=alignment)
    return {
        "energy": replace(PLAIN_DECODING, batch_size=BATCH_SIZE),
        "vad": vad,
        **{f"vad_pad_after_{pad}": replace(vad, vad=VADOptions(speech_pad_after_seconds=pad)) for pad in pads_after},
    }


def build_recordings(clips: list[tuple[np.ndarray, str]], count: int, seed: int) -> list[LongRecording]:
    """``count`` recordings of 20-40 clips, each clip used once while they last."""
    rng = np.random.default_rng(seed)
    order, recordings = [], []
    for _ in range(count):
        size = int(rng.integers(CLIPS_PER_RECORDING[0], CLIPS_PER_RECORDING[1] + 1))
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


def timed_words(transcript: Transcript) -> list[tuple[str, float]]:
    """(normalized word, start) of every word; a segment without word times gives each word its start."""
    words = []
    for segment in transcript.segments:
        timed = [(w.word, w.start) for w in segment.words] or [(w, segment.start) for w in segment.text.split()]
        words += [(normalize_transcript(word), start) for word, start in timed if normalize_transcript(word)]
    return words


def clip_alignment(recording: LongRecording, words: list[tuple[str, float]]) -> tuple[list[float], set[int]]:
    """Aligned as for WER: |start - clip start| (s) of each clip's first word that the hypothesis has right,
    and the clips with an error (a word of theirs substituted or deleted, or a word inserted after them)."""
    reference, clip_of_word = [], []
    for clip, text in enumerate(recording.texts):
        words_of_clip = normalize_transcript(text).split()
        reference += words_of_clip
        clip_of_word += [clip] * len(words_of_clip)
    first_words = {
        index for index in range(len(clip_of_word)) if index == 0 or clip_of_word[index - 1] != clip_of_word[index]
    }
    if not words:
        return [], set(range(len(recording.texts)))
    errors, wrong = [], set()
    for chunk in jiwer.process_words(" ".join(reference), " ".join(w for w, _ in words)).alignments[0]:
        if chunk.type != "equal":
            wrong |= {
                clip_of_word[min(i, len(clip_of_word) - 1)]
                for i in range(chunk.ref_start_idx, max(chunk.ref_end_idx, chunk.ref_start_idx + 1))
            }
            continue
        for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
            if chunk.ref_start_idx + offset in first_words:
                clip_start = recording.clip_bounds[clip_of_word[chunk.ref_start_idx + offset]][0] / SAMPLE_RATE
                errors.append(abs(words[chunk.hyp_start_idx + offset][1] - clip_start))
    return errors, wrong


def per_clip_texts(transcriber: Transcriber, recording: LongRecording, waveform: np.ndarray) -> list[str]:
    """Every clip of ``recording`` decoded on its own and whole, cut from ``waveform`` (its noise, no pauses)."""
    clips = [waveform[start:end] for start, end in recording.clip_bounds]
    return [
        text
        for first in range(0, len(clips), BATCH_SIZE)
        for text in transcriber.recognize(clips[first : first + BATCH_SIZE])
    ]


def clip_details(
    recording: LongRecording, transcript: Transcript, clip_texts: list[str], wrong: set[int]
) -> list[dict]:
    """The clips that the long-form transcript gets wrong and the one-by-one decoding right: where they are,
    and the segments that overlap them (their window and text)."""
    details = []
    for clip in sorted(wrong):
        if normalize_transcript(clip_texts[clip]) != normalize_transcript(recording.texts[clip]):
            continue
        start, end = (bound / SAMPLE_RATE for bound in recording.clip_bounds[clip])
        overlapping = [
            (s.start, s.end, s.text) for s in transcript.segments if s.end > start - 0.5 and s.start < end + 0.5
        ]
        details.append(
            {"clip": [round(start, 3), round(end, 3)], "reference": recording.texts[clip], "segments": overlapping}
        )
    return details


def score_condition(transcriber: Transcriber, recordings: list[LongRecording], dbfs: float | None, args) -> dict:
    noisy = [r.waveform + noise_floor(len(r.waveform), dbfs, seed) for seed, r in enumerate(recordings)]
    clip_texts = [per_clip_texts(transcriber, r, w) for r, w in zip(recordings, noisy, strict=True)]
    clip_rates = ErrorRates()
    clip_rates.update([t for texts in clip_texts for t in texts], [[t] for r in recordings for t in r.texts])
    clip_wer = clip_rates.compute()["wer"]
    result = {"per_clip_wer": round(clip_wer, 2)}
    for system, options in systems(args.alignment, args.vad_pad_after).items():
        rates, errors, details = ErrorRates(), [], []
        transcripts = transcriber(noisy, options=options)
        for recording, transcript, texts in zip(recordings, transcripts, clip_texts, strict=True):
            rates.update([transcript.text], [[" ".join(recording.texts)]])
            recording_errors, wrong = clip_alignment(recording, timed_words(transcript))
            errors += recording_errors
            details += clip_details(recording, transcript, texts, wrong)
        wer = rates.compute()["wer"]
        result[system] = {
            "long_form_wer": round(wer, 2),
            "wer_ratio": round(wer / clip_wer, 2) if clip_wer else None,
            "start_error_median_s": round(float(np.median(errors)), 3) if errors else None,
            f"start_error_p{PERCENTILE}_s": round(float(np.percentile(errors, PERCENTILE)), 3) if errors else None,
            "first_words_timed": len(errors),
            "clips_wrong_only_in_long_form": len(details),
        } | ({"details": details} if args.details else {})
    return result


def empty_inputs(transcriber: Transcriber, systems_to_run: dict[str, TranscriptionOptions]) -> dict:
    """What each system transcribes from 30 s of digital silence and of noise alone."""
    samples = int(EMPTY_SECONDS * SAMPLE_RATE)
    waveforms = [noise_floor(samples, dbfs, seed=1000) for dbfs in CONDITIONS.values()]
    report = {name: {} for name in CONDITIONS}
    for system, options in systems_to_run.items():
        for name, transcript in zip(CONDITIONS, transcriber(waveforms, options=options), strict=True):
            report[name][system] = transcript.text
    return report


def corpus_clips(corpus: str, root: str) -> list[tuple[np.ndarray, str]]:
    if corpus == "fsdd":
        utterances = read_fsdd(root, FSDD_HELD_OUT)
    else:
        utterances = ASRDataModule(format="espeak").read_split("test")
    return [(load_audio(u.audio_path), u.text) for u in utterances]


def default_pads(transcriber: Transcriber) -> dict[str, float]:
    """The VAD's pads before and after speech (s) in the ``vad`` system: the Transcriber's defaults."""
    vad = transcriber.resolve_options().vad
    return {"before": vad.speech_pad_before_seconds, "after": vad.speech_pad_after_seconds}


def run_corpus(checkpoint: str, corpus: str, args: argparse.Namespace) -> dict:
    transcriber = Transcriber.from_checkpoint(checkpoint, device="cpu")
    recordings = build_recordings(corpus_clips(corpus, args.fsdd_root), args.recordings, args.seed)
    report = {
        "checkpoint": checkpoint, "recordings": len(recordings), "clips": sum(len(r.texts) for r in recordings),
        "audio_seconds": round(sum(len(r.waveform) for r in recordings) / SAMPLE_RATE, 1),
        "ctc_head": transcriber.ctc_head is not None, "alignment": args.alignment,
        "vad_pads_s": default_pads(transcriber),
    }
    report["conditions"] = {name: score_condition(transcriber, recordings, db, args) for name, db in CONDITIONS.items()}
    report["silence_or_noise_alone"] = empty_inputs(transcriber, systems(args.alignment, args.vad_pad_after))
    if args.repeats:
        report["speed"] = speed_report(transcriber, [r.waveform for r in recordings], args.repeats)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="an FSDD checkpoint (tasks/asr/fsdd.yaml)")
    parser.add_argument("--espeak-checkpoint", help="an espeak checkpoint (tasks/asr/espeak.yaml): adds its test set")
    parser.add_argument("--fsdd-root", default=str(ROOT.parent / "shared" / "data" / "fsdd"))
    parser.add_argument("--recordings", type=int, default=10, help="long recordings per corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alignment", default="auto", choices=ALIGNMENTS, help="word timestamps from")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs of each configuration (0: no speed test)")
    parser.add_argument("--threads", type=int, help="torch threads (default: mms2s transcribe's, configure_threads)")
    parser.add_argument("--details", action="store_true", help="list the clips wrong only in the long form")
    parser.add_argument("--vad-pad-after", type=float, nargs="*", default=[], metavar="S",
                        help="also the vad system with S s of padding after speech (one system per S)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/longform_asr.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        configure_threads()
    report = {"device": f"CPU: {platform.processor() or platform.machine()}", "threads": torch.get_num_threads()}
    report["fsdd"] = run_corpus(args.checkpoint, "fsdd", args)
    if args.espeak_checkpoint:
        report["espeak"] = run_corpus(args.espeak_checkpoint, "espeak", args)
    write_report(report, Path(args.out))


def write_report(report: dict, out: Path) -> None:
    """Writes ``report`` as JSON to ``out`` (its folder made) and prints it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
