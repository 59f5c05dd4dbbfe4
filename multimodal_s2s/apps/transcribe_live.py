"""``mms2s transcribe --stream``: live transcription from the microphone, standard input or a file.

    mms2s transcribe --stream --checkpoint CKPT                          # the microphone (sounddevice)
    ffmpeg -i talk.mp3 -f s16le -ac 1 -ar 16000 - | mms2s transcribe --stream - --checkpoint CKPT
    mms2s transcribe --stream talk.flac --realtime --checkpoint CKPT      # a file played as if live

The audio goes through ``Transcriber.live`` (``pipelines.live``): committed words are printed on stdout as
they settle, one line per pass that commits any (``[start -> end] words``); on a terminal, the words not
settled yet show on stderr. When the stream ends (end of input, or Ctrl+C / SIGINT, which stops reading and
commits what was heard), the transcript is written as NAME.<format> in ``--output-dir`` (NAME: the file's
stem, ``stdin`` or ``microphone``) and a closing line gives the audio's length, the compute time over the
audio time and the most audio buffered. A source that cannot be read is one ``error:`` line (exit 2).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from multimodal_s2s.apps.common import EXIT_BAD_SETUP, EXIT_FAILED, fail
from multimodal_s2s.apps.live_audio import SourceError, open_source
from multimodal_s2s.outputs import OutputError, OutputPlan, atomic_write_text
from multimodal_s2s.pipelines.live import LiveUpdate
from multimodal_s2s.pipelines.transcription_options import LiveOptions
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.speech.stream_audio import AudioStreamError, check_rate
from multimodal_s2s.speech.subtitles import render

if TYPE_CHECKING:
    from multimodal_s2s.pipelines import Transcriber, TranscriptionOptions
    from multimodal_s2s.pipelines.live import StreamingTranscriber

GREY, RESET, CLEAR_LINE = "\033[90m", "\033[0m", "\r\033[K"
TAIL_WIDTH = 100


class StopOnInterrupt:
    """SIGINT ends the stream: at once while waiting for audio, after the pass while decoding."""

    def __init__(self):
        self.stopped = self.waiting = False

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        self.stopped = True
        if self.waiting:
            raise KeyboardInterrupt


def run_stream(
    args: argparse.Namespace, transcriber: Transcriber, options: TranscriptionOptions, out_dir: Path, kinds: tuple
) -> int:
    """Transcribe ``args.stream`` live and write its transcript in each of ``kinds``; the exit code."""
    name = {"mic": "microphone", "-": "stdin"}.get(args.stream, Path(args.stream).stem)
    targets = [out_dir / f"{name}.{kind}" for kind in kinds]
    inputs = [] if args.stream in ("mic", "-") else [args.stream]
    try:
        rate, pieces = open_source(args.stream, check_rate(args.rate), args.realtime)
        live = transcriber.live(rate, options, LiveOptions(chunk_seconds=args.chunk_seconds))
    except (SourceError, ValueError) as error:  # AudioStreamError, bad live options
        return fail(str(error))
    problem = OutputPlan(inputs, args.overwrite).claim_all(targets, name)
    if problem:
        return fail(problem)
    started = time.perf_counter()
    try:
        interrupted = _follow(live, pieces)
    except (SourceError, AudioStreamError) as error:  # the source failed: what was heard is still written
        live.finish()
        if not live.received:
            return fail(str(error))
        print(f"error: {error}", file=sys.stderr)
        interrupted, code = False, EXIT_BAD_SETUP
    else:
        code = 0
    transcript = live.transcript(name)
    try:
        for target in targets:
            atomic_write_text(target, render(transcript, target.suffix[1:], name, args.max_words_per_cue))
    except OutputError as error:
        return fail(str(error), EXIT_FAILED)
    stopped = " (interrupted)" if interrupted else ""
    words = f"{len(live.words)} word(s)" if live.words else "no speech found, an empty transcript"
    print(
        f"streamed {transcript.duration:.1f} s of audio{stopped} in {time.perf_counter() - started:.1f} s: "
        f"compute/audio {live.lag:.3f}, most audio buffered {live.max_buffer / SAMPLE_RATE:.1f} s; "
        f"{words} written to {', '.join(str(t) for t in targets)}",
        file=sys.stderr,
    )
    return code


def _follow(live: StreamingTranscriber, pieces) -> bool:
    """Feed every piece and finish, showing each update; whether SIGINT ended the stream."""
    with StopOnInterrupt() as interrupt:
        while not interrupt.stopped:
            interrupt.waiting = True
            try:
                piece = next(pieces, None)
            except KeyboardInterrupt:
                break
            finally:
                interrupt.waiting = False
            if piece is None:
                break
            _show(live.feed(piece))
        _show(live.finish())
    return interrupt.stopped


def _show(update: LiveUpdate) -> None:
    """Committed words on stdout; the tail on a terminal's stderr, in grey, in place; a warning on stderr."""
    terminal = sys.stderr.isatty()
    if update.warning:
        print(f"{CLEAR_LINE if terminal else ''}warning: {update.warning}", file=sys.stderr, flush=True)
    if update.committed:
        if terminal:
            print(CLEAR_LINE, end="", file=sys.stderr, flush=True)
        first, last = update.committed[0], update.committed[-1]
        print(f"[{first.start:.2f} -> {last.end:.2f}] {update.committed_text}", flush=True)
    if terminal:
        print(f"{CLEAR_LINE}{GREY}{update.tail_text[-TAIL_WIDTH:]}{RESET}", end="", file=sys.stderr, flush=True)
