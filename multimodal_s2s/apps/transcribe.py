"""Transcribe recordings with a speech-recognition checkpoint, long ones included.

    mms2s transcribe talk.flac recordings/ --checkpoint runs/asr/.../best.ckpt
        [--output-format txt|vtt|srt|tsv|json|all] [--output-dir DIR] [--overwrite]
        [--word-timestamps] [--max-words-per-cue N] [--windows vad|energy] [--vad-threshold P] ...

Any common format (wav, flac, ogg/opus, mp3), rate and channel count is read as 16 kHz mono, through
``multimodal_s2s.Transcriber``: Silero VAD finds the speech (``--windows energy``: the energy splitter),
windows of it are decoded in batches across files, each window is checked as whisper does (silence
dropped, looping or unsure text re-decoded at rising temperatures; ``--*-threshold none`` turns a check
off) and, with ``--word-timestamps``, its words are timed. For each input ``NAME.ext`` the transcript is
written as ``NAME.<format>`` (all five with ``all``; ``--format`` is an alias of ``--output-format``) in
``--output-dir`` (default: the current folder, as whisper does; never beside the inputs unless asked):
txt is the text, vtt and srt subtitles (one word per cue with ``--max-words-per-cue 1``, which implies
``--word-timestamps``), tsv the segments, json the segments with their words. Inputs are never written
over, nor existing files unless --overwrite is given; two inputs with the same name in one run are
refused; files are written atomically. ``path<TAB>text`` goes to stdout per file; a file in which no
speech is found gets an empty transcript and a line saying so (not an error), as does one whose speech
gave no text that passed the checks (the line says how many windows; ``--keep-failed`` keeps a failing
window's last decoding instead, as whisper does). Progress bars over files
and windows (when stderr is a terminal) and, at the end, the real-time factor (processing time / audio
duration, model loading excluded) go to stderr. A file that cannot be read gets one ``error: PATH: reason``
line and the others are still transcribed; the exit code is then 1 (2 when the checkpoint or the options
cannot be used).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from multimodal_s2s.apps.common import (
    FileCount,
    add_batch_size_argument,
    add_checkpoint_arguments,
    add_output_arguments,
    fail,
)
from multimodal_s2s.onnx_runtime.manifest import is_export
from multimodal_s2s.outputs import OutputError, OutputPlan, atomic_write_text, check_output_dir
from multimodal_s2s.pipelines import LiveOptions, TranscriptionOptions
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.preprocessing.files import AUDIO_SUFFIXES, expand_inputs
from multimodal_s2s.speech.subtitles import OUTPUT_FORMATS, render
from multimodal_s2s.speech.vad import VADOptions, VADUnavailableError

if TYPE_CHECKING:  # the pipeline loads the models: imported by run(), so that --help stays quick
    from multimodal_s2s.pipelines import Transcriber, Transcript

ALL_FORMATS = "all"
DEFAULTS, VAD_DEFAULTS = TranscriptionOptions(), VADOptions()
FALLBACK_TEMPERATURE_STEP = 0.2  # whisper's --temperature_increment_on_fallback
MAX_TEMPERATURE = 1.0


def optional(kind: type[float] | type[int]):
    """An argparse type: a ``kind`` number, or None for "none" / "off" (a check turned off)."""

    def parse(text: str) -> float | int | None:
        if text.lower() in ("none", "off"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} or 'none', got {text!r}") from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="*", help="audio files, or folders whose audio files to transcribe")
    add_checkpoint_arguments(
        parser, "a speech-recognition checkpoint (.ckpt), Hub folder, Hub repository id or ONNX export folder"
    )
    parser.add_argument("--output-format", "--format", dest="output_format", default="txt",
                        choices=(*OUTPUT_FORMATS, ALL_FORMATS), help="default txt; all: every format")
    add_output_arguments(parser, "transcripts")
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (default: the checkpoint's)")
    add_batch_size_argument(parser, DEFAULTS.batch_size, "windows")
    parser.add_argument(
        "--window-seconds", type=float, default=None, help="longest window (default and cap: the checkpoint's, <= 30)"
    )
    parser.add_argument(
        "--ctc-weight", type=float, default=None, help="CTC rescoring weight of the beam (default 0.3 with a CTC head)"
    )
    _add_word_arguments(parser.add_argument_group("word timestamps"))
    _add_window_arguments(parser.add_argument_group("voice activity detection"))
    _add_check_arguments(parser.add_argument_group("checks and fallback (whisper's)"))
    _add_stream_arguments(parser.add_argument_group("live transcription (instead of audio files)"))


def _add_word_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--word-timestamps", action="store_true", help="time each word (json: segments' words)")
    group.add_argument("--max-words-per-cue", type=int, default=None,
                       help="srt/vtt cues of at most N words (1: a word per cue); implies --word-timestamps",
                       metavar="N")


def _add_window_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--windows", choices=("vad", "energy"), default="vad",
                       help="how speech is found: Silero VAD (default) or frame energy")
    group.add_argument("--vad-threshold", type=float, default=VAD_DEFAULTS.threshold, help="speech probability")
    group.add_argument("--vad-min-speech", type=float, default=VAD_DEFAULTS.min_speech_seconds,
                       help="shorter speech is dropped (s)")
    group.add_argument("--vad-min-silence", type=float, default=VAD_DEFAULTS.min_silence_seconds,
                       help="shorter pauses do not end speech (s)")
    group.add_argument("--vad-pad-before", type=float, default=VAD_DEFAULTS.speech_pad_before_seconds,
                       help="padding before speech (s)")
    group.add_argument("--vad-pad-after", type=float, default=VAD_DEFAULTS.speech_pad_after_seconds,
                       help="padding after speech (s; default: the silence the checkpoint was trained with after "
                            "utterances where above 0.1, else 0.1)")


def _add_check_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--temperature", type=float, default=0.0, help="first decoding temperature (default 0)")
    group.add_argument("--temperature-increment-on-fallback", type=optional(float), default=FALLBACK_TEMPERATURE_STEP,
                       help="temperature step while a window fails a check, up to 1 (none: no fallback)")
    group.add_argument("--best-of", type=int, default=DEFAULTS.best_of, help="samples per fallback temperature")
    group.add_argument("--keep-failed", action="store_true",
                       help="keep a window's last decoding when every try fails the checks, as whisper does "
                            "(default: drop it)")
    for name in ("compression_ratio_threshold", "logprob_threshold", "no_speech_threshold", "max_ngram_repeats"):
        default = getattr(DEFAULTS, name)
        group.add_argument(f"--{name.replace('_', '-')}", type=optional(type(default)), default=default,
                           help=f"default {default}; none: off")


def _add_stream_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--stream", nargs="?", const="mic", metavar="SOURCE",
                       help="transcribe live: the microphone (no SOURCE), - (raw 16-bit PCM on stdin) or a file")
    group.add_argument("--rate", type=int, default=SAMPLE_RATE, help="Hz of the microphone or of stdin's PCM")
    group.add_argument("--realtime", action="store_true", help="--stream FILE: feed it at the pace it plays")
    group.add_argument("--chunk-seconds", type=float, default=LiveOptions.chunk_seconds,
                       help="audio between decodings (latency about 1-2 chunks; longer: cheaper)")


def transcription_options(args: argparse.Namespace) -> TranscriptionOptions:
    """The pipeline's options from the command line; ValueError (one line) for impossible values."""
    step = args.temperature_increment_on_fallback
    temperatures = (args.temperature,)
    if step:
        temperatures = tuple(np.arange(args.temperature, MAX_TEMPERATURE + 1e-6, step).round(6).tolist())
    vad = VADOptions(threshold=args.vad_threshold, min_speech_seconds=args.vad_min_speech,
                     min_silence_seconds=args.vad_min_silence, speech_pad_before_seconds=args.vad_pad_before,
                     speech_pad_after_seconds=args.vad_pad_after)
    return TranscriptionOptions(
        beam_size=args.beam_size, batch_size=args.batch_size, window_seconds=args.window_seconds,
        ctc_weight=args.ctc_weight, windows=args.windows, vad=vad,
        word_timestamps=args.word_timestamps or args.max_words_per_cue is not None, temperature=temperatures,
        best_of=args.best_of, drop_failed=not args.keep_failed,
        compression_ratio_threshold=args.compression_ratio_threshold, logprob_threshold=args.logprob_threshold,
        no_speech_threshold=args.no_speech_threshold, max_ngram_repeats=args.max_ngram_repeats,
    )


def run(args: argparse.Namespace) -> int:
    from multimodal_s2s.pipelines import Transcriber

    try:
        if bool(args.audio) == (args.stream is not None):
            raise ValueError("give audio files or folders, or --stream [SOURCE] (live), one or the other")
        if args.max_words_per_cue is not None and args.max_words_per_cue < 1:
            raise ValueError(f"--max-words-per-cue must be >= 1, got {args.max_words_per_cue}")
        options = transcription_options(args)
        if is_export(args.checkpoint):
            if args.stream is not None:
                raise ValueError(f"{args.checkpoint}: live transcription commits words by their timestamps, which an "
                                 "ONNX export does not offer (use the checkpoint or its Hub folder)")
            from multimodal_s2s.pipelines.onnx_transcription import OnnxTranscriber

            transcriber = OnnxTranscriber(args.checkpoint)
        else:
            transcriber = Transcriber.from_checkpoint(args.checkpoint, args.device)
        options = transcriber.resolve_options(options)  # checked against the checkpoint, the VAD's pads chosen
        transcriber.splitter(options)  # loads the VAD
        out_dir = check_output_dir(args.output_dir)  # made once the checkpoint and options are known to be good
    except (ValueError, VADUnavailableError) as error:  # bad options, checkpoint, output folder; no VAD
        return fail(str(error))
    kinds = OUTPUT_FORMATS if args.output_format == ALL_FORMATS else (args.output_format,)
    if args.stream is not None:
        from multimodal_s2s.apps.transcribe_live import run_stream

        return run_stream(args, transcriber, options, out_dir, kinds)
    audio_files = f"audio files ({', '.join(AUDIO_SUFFIXES)})"
    paths, problems = expand_inputs(args.audio, AUDIO_SUFFIXES, audio_files, recursive=True)
    count = FileCount("transcribed", problems)
    plan = OutputPlan(paths, args.overwrite)
    targets = {path: [out_dir / f"{path.stem}.{kind}" for kind in kinds] for path in paths}
    refused = {path: problem for path in paths if (problem := plan.claim_all(targets[path], path))}
    for problem in refused.values():
        count.failed(problem)
    todo = [path for path in paths if path not in refused]
    started = time.perf_counter()
    audio_seconds = _transcribe(transcriber, todo, options, targets, args.max_words_per_cue, count)
    _summary(count, audio_seconds, time.perf_counter() - started, options)
    return count.exit_code()


def _transcribe(
    transcriber: Transcriber,
    todo: list[Path],
    options: TranscriptionOptions,
    targets: dict[Path, list[Path]],
    max_words_per_cue: int | None,
    count: FileCount,
) -> float:
    """Transcribe and write ``todo`` with progress bars over files and windows (on a terminal only: piped
    stderr keeps one clean line per message), counting each file in ``count``: the audio seconds done."""
    audio_seconds = 0.0
    with (
        tqdm(total=len(todo), desc="files", unit="file", file=sys.stderr, position=0, disable=None) as files,
        tqdm(total=0, desc="windows", unit="window", file=sys.stderr, position=1, disable=None) as windows,
    ):

        def show(found: int, decoded: int) -> None:
            windows.total, windows.n = found, decoded
            windows.refresh()

        for item in transcriber.stream(todo, options=options, progress=show):
            path = todo[item.index]
            problem = item.error or _write(item.transcript, targets[path], path, max_words_per_cue)
            if problem:
                count.failed(problem, lambda line: files.write(line, file=sys.stderr))
            else:
                count.succeeded()
                audio_seconds += item.transcript.duration
                files.write(f"{path}\t{item.transcript.text}", file=sys.stdout)
                if not item.transcript.segments:
                    files.write(_empty_transcript_line(path, item.transcript), file=sys.stderr)
            files.update()
    return audio_seconds


def _empty_transcript_line(path: Path, transcript: Transcript) -> str:
    """Why ``path``'s transcript is empty: no speech, or speech whose every decoding failed the checks."""
    if transcript.unheard_windows:
        return (f"{path}: speech found in {transcript.unheard_windows} window(s), but no decoding of it passed the "
                "checks (--keep-failed keeps the last try); wrote an empty transcript")
    return f"{path}: no speech found; wrote an empty transcript"


def _write(transcript: Transcript, targets: list[Path], path: Path, max_words_per_cue: int | None) -> str | None:
    """Write one transcript in each target's format; the one-line problem, or None."""
    try:
        for target in targets:
            atomic_write_text(target, render(transcript, target.suffix[1:], str(path), max_words_per_cue))
    except OutputError as error:
        return f"{path}: {error}"
    return None


def _summary(count: FileCount, audio_seconds: float, elapsed: float, options: TranscriptionOptions) -> None:
    """The closing line on stderr: files, audio, real-time factor, failures and the VAD's pads."""
    rtf = elapsed / audio_seconds if audio_seconds else float("nan")
    vad, failed = options.vad, count.failures
    pads = f"; VAD pads {vad.speech_pad_before_seconds:g} s before speech, {vad.speech_pad_after_seconds:g} s after"
    print(
        f"transcribed {count.done} file(s), {audio_seconds:.1f} s of audio in {elapsed:.1f} s: real-time factor "
        f"{rtf:.3f}" + (f"; {failed} failed" if failed else "") + (pads if options.windows == "vad" else ""),
        file=sys.stderr,
    )

