"""Transcribe recordings with a speech-recognition checkpoint, long ones included.

    mms2s transcribe talk.flac recordings/ --checkpoint runs/asr/.../best.ckpt [--format txt|json|srt]
        [--output-dir DIR] [--overwrite] [--beam-size N] [--batch-size N]

Any common format (wav, flac, ogg/opus, mp3), rate and channel count is read as 16 kHz mono. Long
recordings are cut at silences into windows of at most 30 s and decoded in batches of windows across
files, through ``multimodal_s2s.Transcriber``. For each input ``NAME.ext`` the transcript is written to
``NAME.<format>`` in ``--output-dir`` (default: the current folder, as whisper does; never beside the
inputs unless asked): txt is the text, json and srt carry the segment timestamps. Inputs are never
written over, nor existing files unless --overwrite is given; two inputs with the same name in one run
are refused; files are written atomically. ``path<TAB>text`` goes to stdout per file; a progress bar
over files and, at the end, the real-time factor (processing time / audio duration, model loading
excluded) go to stderr. A file that cannot be read gets one ``error: PATH: reason`` line and the others
are still transcribed; the exit code is then 1 (2 when the checkpoint or the options cannot be used).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.data.asr import AUDIO_SUFFIXES
from multimodal_s2s.decoding import DecodingOptionsError
from multimodal_s2s.outputs import OutputError, OutputPlan, atomic_write_text, check_output_dir
from multimodal_s2s.pipelines import Transcriber, Transcript
from multimodal_s2s.pipelines.transcription import DEFAULT_BATCH_SIZE

EXIT_FAILED_FILES, EXIT_BAD_SETUP = 1, 2
FORMATS = ("txt", "json", "srt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", help="audio files, or folders whose audio files to transcribe")
    parser.add_argument("--checkpoint", required=True, help="a speech-recognition checkpoint (.ckpt)")
    parser.add_argument("--format", choices=FORMATS, default="txt", help="output format (default txt)")
    parser.add_argument("--output-dir", default=".", help="where transcripts go (default: the current folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing transcript files")
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="windows decoded together")
    parser.add_argument(
        "--window-seconds", type=float, default=None, help="longest window (default and cap: the checkpoint's, <= 30)"
    )
    parser.add_argument(
        "--ctc-weight", type=float, default=None, help="CTC rescoring weight of the beam (default 0.3 with a CTC head)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or (args.beam_size is not None and args.beam_size < 1):
        return _fail("--batch-size and --beam-size must be >= 1")
    if args.window_seconds is not None and args.window_seconds <= 0:
        return _fail(f"--window-seconds must be > 0, got {args.window_seconds}")
    try:
        out_dir = check_output_dir(args.output_dir)
        transcriber = Transcriber.from_checkpoint(args.checkpoint, args.device)
        transcriber.options(args.beam_size)  # checks the decoding options before any file is read
    except (CheckpointError, DecodingOptionsError, OutputError, ValueError) as error:
        return _fail(str(error))
    paths, failures = expand_inputs(args.audio)
    plan = OutputPlan(paths, args.overwrite)
    targets = {path: out_dir / f"{path.stem}.{args.format}" for path in paths}
    refused = {path: problem for path in paths if (problem := plan.claim(targets[path], path))}
    failures += [_report(problem) for problem in refused.values()]
    todo = [path for path in paths if path not in refused]
    started, audio_seconds, written = time.perf_counter(), 0.0, 0
    items = transcriber.stream(todo, beam_size=args.beam_size, batch_size=args.batch_size,
                               window_seconds=args.window_seconds, ctc_weight=args.ctc_weight)  # fmt: skip
    with tqdm(total=len(todo), desc="transcribing", unit="file", file=sys.stderr) as progress:
        for item in items:
            path = todo[item.index]
            problem = item.error or _write(item.transcript, targets[path], args.format, path)
            if problem:
                failures.append(_report(problem, progress))
            else:
                audio_seconds += item.transcript.duration
                written += 1
                progress.write(f"{path}\t{item.transcript.text}", file=sys.stdout)
            progress.update()
    _summary(written, len(failures), audio_seconds, time.perf_counter() - started)
    return EXIT_FAILED_FILES if failures else 0


def _write(transcript: Transcript, target: Path, kind: str, path: Path) -> str | None:
    """Write one transcript; the one-line problem, or None."""
    try:
        atomic_write_text(target, render(transcript, kind, str(path)))
    except OutputError as error:
        return f"{path}: {error}"
    return None


def srt_timestamp(seconds: float) -> str:
    """Seconds -> ``HH:MM:SS,mmm`` (SubRip)."""
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def render(transcript: Transcript, kind: str, audio_path: str = "") -> str:
    """The transcript as ``txt`` (the text and a newline), ``json`` (audio, duration, text, segments) or
    ``srt`` (one numbered cue per non-empty segment)."""
    if kind == "txt":
        return transcript.text + "\n"
    if kind == "json":
        record = {"audio": audio_path, "duration": transcript.duration, "text": transcript.text}
        return json.dumps({**record, "segments": [asdict(s) for s in transcript.segments]}, ensure_ascii=False) + "\n"
    if kind == "srt":
        spoken = [segment for segment in transcript.segments if segment.text]
        return "".join(
            f"{number}\n{srt_timestamp(s.start)} --> {srt_timestamp(s.end)}\n{s.text}\n\n"
            for number, s in enumerate(spoken, start=1)
        )
    raise ValueError(f"unknown transcript format {kind!r}; choose from {', '.join(FORMATS)}")


def expand_inputs(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """Files as given, folders as their audio files (recursively, sorted); missing paths are failures."""
    paths, failures = [], []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                failures.append(_report(f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder"))
            paths += found
        elif path.exists():
            paths.append(path)
        else:
            failures.append(_report(f"{path}: no such file or folder"))
    return paths, failures


def _report(message: str, progress: tqdm | None = None) -> str:
    line = f"error: {message}"
    if progress is None:
        print(line, file=sys.stderr)
    else:
        progress.write(line, file=sys.stderr)
    return line


def _summary(done: int, failed: int, audio_seconds: float, elapsed: float) -> None:
    rtf = elapsed / audio_seconds if audio_seconds else float("nan")
    print(
        f"transcribed {done} file(s), {audio_seconds:.1f} s of audio in {elapsed:.1f} s: real-time factor "
        f"{rtf:.3f}" + (f"; {failed} failed" if failed else ""),
        file=sys.stderr,
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_SETUP
