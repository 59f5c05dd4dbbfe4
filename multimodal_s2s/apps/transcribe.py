"""Transcribe recordings with a speech-recognition checkpoint, long ones included.

    mms2s transcribe talk.flac recordings/ --checkpoint runs/asr/.../best.ckpt [--format txt|json|srt]
        [--beam-size N] [--batch-size N] [--output-dir DIR]

Any common format (wav, flac, ogg/opus, mp3), rate and channel count is read as 16 kHz mono. Long
recordings are cut at silences into windows of at most 30 s (see ``multimodal_s2s.transcription``)
and decoded in batches of windows across files. For each input ``NAME`` the transcript is written to
``NAME.<format>`` beside it (or in ``--output-dir``): txt is the text, json and srt carry the segment
timestamps. An output path that is an input, or that another input already wrote in this run, is never
written. ``path<TAB>text`` goes to stdout per file; a progress bar over files and, at the end, the
real-time factor (processing time / audio duration, model loading excluded) go to stderr. A file that
cannot be read or is empty gets one ``error: PATH: reason`` line and the others are still transcribed;
the exit code is then 1 (2 when the checkpoint or the options cannot be used).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from multimodal_s2s.audio import SAMPLE_RATE, AudioLoadError, load_audio
from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.data.asr import AUDIO_SUFFIXES
from multimodal_s2s.decoding import DecodingOptionsError
from multimodal_s2s.transcription import FORMATS, SampleRange, SpeechRecognizer, make_transcript, render

EXIT_FAILED_FILES, EXIT_BAD_SETUP = 1, 2
DEFAULT_BATCH_SIZE = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", help="audio files, or folders whose audio files to transcribe")
    parser.add_argument("--checkpoint", required=True, help="a speech-recognition checkpoint (.ckpt)")
    parser.add_argument("--format", choices=FORMATS, default="txt", help="output format (default txt)")
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="windows decoded together")
    parser.add_argument("--output-dir", default=None, help="where transcripts go (default: beside each input)")
    parser.add_argument(
        "--window-seconds", type=float, default=None, help="longest window (default and cap: the checkpoint's, <= 30)"
    )
    parser.add_argument(
        "--ctc-weight", type=float, default=None, help="CTC rescoring weight of the beam (default 0.3 with a CTC head)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


@dataclass
class PendingFile:
    """A loaded recording whose windows are being decoded."""

    path: Path
    waveform: np.ndarray
    windows: list[SampleRange]
    texts: dict[int, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return len(self.texts) == len(self.windows)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or (args.beam_size is not None and args.beam_size < 1):
        return _fail("--batch-size and --beam-size must be >= 1")
    if args.window_seconds is not None and args.window_seconds <= 0:
        return _fail(f"--window-seconds must be > 0, got {args.window_seconds}")
    try:
        recognizer = SpeechRecognizer.load(args.checkpoint, args.device)
        recognizer.options(args.beam_size)  # checks the decoding options before any file is read
    except (CheckpointError, DecodingOptionsError, ValueError) as error:
        return _fail(str(error))
    paths, failures = expand_inputs(args.audio)
    started, audio_seconds = time.perf_counter(), 0.0
    writer = OutputWriter(args.format, args.output_dir, paths)
    queue: list[tuple[PendingFile, int]] = []  # (file, window index) not decoded yet
    with tqdm(total=len(paths), desc="transcribing", unit="file", file=sys.stderr) as progress:
        for path in paths:
            try:
                waveform = load_audio(path)
            except AudioLoadError as error:
                failures.append(_report(str(error), progress))
                continue
            audio_seconds += len(waveform) / SAMPLE_RATE
            pending = PendingFile(path, waveform, recognizer.windows(waveform, args.window_seconds))
            queue += [(pending, index) for index in range(len(pending.windows))]
            if not pending.windows:  # silence only: an empty transcript
                failures += writer.write(pending, progress)
            while len(queue) >= args.batch_size:
                failures += _decode(recognizer, queue[: args.batch_size], args, writer, progress)
                queue = queue[args.batch_size :]
        if queue:
            failures += _decode(recognizer, queue, args, writer, progress)
    elapsed = time.perf_counter() - started
    _summary(len(writer.written), len(failures), audio_seconds, elapsed)
    return EXIT_FAILED_FILES if failures else 0


def _decode(recognizer, batch, args, writer, progress) -> list[str]:
    """Decode one batch of windows; write the files it completes. Returns the failures (write errors)."""
    waveforms = [pending.waveform[slice(*pending.windows[index])] for pending, index in batch]
    texts = recognizer.recognize(waveforms, args.beam_size, args.ctc_weight)
    failures = []
    for (pending, index), text in zip(batch, texts, strict=True):
        pending.texts[index] = text
        if pending.done:
            failures += writer.write(pending, progress)
    return failures


class OutputWriter:
    """Writes each transcript to ``NAME.<format>``; refuses paths that are inputs or already written."""

    def __init__(self, kind: str, output_dir: str | None, inputs: list[Path]):
        self.kind, self.output_dir = kind, Path(output_dir) if output_dir else None
        self.protected = {path.resolve() for path in inputs}
        self.written: set[Path] = set()

    def target(self, path: Path) -> Path:
        return (self.output_dir or path.parent) / f"{path.name}.{self.kind}"

    def write(self, pending: PendingFile, progress: tqdm) -> list[str]:
        """Write one file's transcript and advance the progress bar; [the error line] on failure."""
        target = self.target(pending.path)
        texts = [text for _, text in sorted(pending.texts.items())]
        transcript = make_transcript(len(pending.waveform), pending.windows, texts)
        if target.resolve() in self.protected or target.resolve() in self.written:
            return [_report(f"{pending.path}: its output {target} is an input or another input's output", progress)]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(transcript, self.kind, str(pending.path)), encoding="utf-8")
        except OSError as error:
            return [_report(f"{pending.path}: cannot write {target} ({error.strerror or error})", progress)]
        self.written.add(target.resolve())
        progress.write(f"{pending.path}\t{transcript.text}", file=sys.stdout)
        progress.update()
        return []


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
        progress.update()
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
