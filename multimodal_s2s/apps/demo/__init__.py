"""Serve a demo web page for a checkpoint (this machine only, unless --host says otherwise).

    mms2s demo captioning --checkpoint runs/.../best.ckpt [--host 127.0.0.1] [--port 8000]
    mms2s demo transcription --checkpoint runs/asr/.../best.ckpt [--max-streams 4] ...

Open the printed address: the page tells what the model is (its model card), offers example images,
captions an image you choose and shows, for each word, where the model looked. The server is
Starlette on uvicorn (``service`` and ``server``): ``GET /`` is the page, ``POST /api/caption?name=FILE``
takes the image's bytes and answers JSON, ``GET /health`` says it is up. Limits on uploads, pixels,
concurrency, time, host names and origins are options; see tasks/captioning/README.md. The transcription
demo (``live``) is a record button over a websocket on the same service, with limits of its own on streams.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from PIL import Image
from starlette.types import ASGIApp

from multimodal_s2s.apps.common import add_checkpoint_arguments, fail
from multimodal_s2s.apps.demo.captioner import DEFAULT_N_BEST, DemoCaptioner
from multimodal_s2s.apps.demo.page import BYTES_PER_MB
from multimodal_s2s.apps.demo.server import listening_socket, make_server
from multimodal_s2s.apps.demo.service import LOCAL_HOSTS, Access, Limits, StreamLimits, create_app
from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.decoding import DecodingOptionsError
from multimodal_s2s.pipelines.transcription_options import LiveOptions
from multimodal_s2s.speech.vad import VADUnavailableError

DEMOS = ("captioning", "transcription")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
#: Addresses that mean "every interface": not a name a client can send as its Host.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    parser.add_argument("task", choices=DEMOS, help="which demo page")
    add_checkpoint_arguments(parser, "a checkpoint of that task (.ckpt)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (default: the checkpoint's)")
    parser.add_argument("--n-best", type=int, default=DEFAULT_N_BEST, help="alternatives shown (at most the beam)")
    limits = parser.add_argument_group("limits (what one client may ask; defaults in brackets)")
    limits.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_bytes / BYTES_PER_MB,
                        help="largest upload accepted, in MB [%(default)g]")
    limits.add_argument("--max-pixels", type=int, default=defaults.max_pixels,
                        help="largest image accepted, in pixels, checked before decoding [%(default)d]")
    limits.add_argument("--max-concurrency", type=int, default=defaults.max_concurrency,
                        help="images decoded and captioned at once [%(default)d]")
    limits.add_argument("--max-queue", type=int, default=defaults.max_queue,
                        help="requests that may wait for their turn besides; beyond, 503 [%(default)d]")
    limits.add_argument("--read-timeout", type=float, default=defaults.read_timeout_s,
                        help="seconds for a request's head, and for any pause in its body [%(default)g]")
    limits.add_argument("--body-timeout", type=float, default=defaults.body_timeout_s,
                        help="seconds for a whole upload [%(default)g]")
    _add_stream_arguments(parser.add_argument_group("live transcription streams (demo transcription)"))
    access = parser.add_argument_group("access")
    access.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help=f"a name or address clients reach the demo by, besides {', '.join(LOCAL_HOSTS)} "
                        "and --host; repeatable; '*' for any")
    access.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="a site (e.g. https://example.org) whose pages may post here; repeatable")


def _add_stream_arguments(group: argparse._ArgumentGroup) -> None:
    defaults = StreamLimits()
    group.add_argument("--max-streams", type=int, default=defaults.max_streams,
                       help="streams open at once; one more is refused [%(default)d]")
    group.add_argument("--max-stream-seconds", type=float, default=defaults.max_stream_seconds,
                       help="longest stream, in seconds of audio and of time [%(default)g]")
    group.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout_s,
                       help="seconds without audio after which a stream is closed [%(default)g]")
    group.add_argument("--max-frame-kb", type=float, default=defaults.max_frame_bytes / 1024,
                       help="largest websocket message, in KB [%(default)g]")
    group.add_argument("--chunk-seconds", type=float, default=LiveOptions.chunk_seconds,
                       help="audio between decodings [%(default)g]")


def check_ranges(args: argparse.Namespace, checks: dict[str, bool]) -> None:
    """ValueError naming the first option (of ``checks``: option -> within range) that is out of range."""
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        value = getattr(args, bad[0].lstrip("-").replace("-", "_"))
        raise ValueError(f"{bad[0]} is out of range (got {value})")


def stream_limits_from(args: argparse.Namespace) -> StreamLimits:
    """Raises ValueError naming the option that is out of range."""
    check_ranges(args, {"--max-streams": args.max_streams >= 1, "--max-stream-seconds": args.max_stream_seconds > 0,
                        "--idle-timeout": args.idle_timeout > 0, "--max-frame-kb": args.max_frame_kb > 0,
                        "--max-concurrency": args.max_concurrency >= 1})
    return StreamLimits(args.max_streams, args.max_stream_seconds, args.idle_timeout,
                        int(args.max_frame_kb * 1024), args.max_concurrency)


def limits_from(args: argparse.Namespace) -> Limits:
    """Raises ValueError naming the option that is out of range."""
    checks = {
        "--max-upload-mb": args.max_upload_mb > 0,
        "--max-pixels": args.max_pixels > 0,
        "--max-concurrency": args.max_concurrency >= 1,
        "--max-queue": args.max_queue >= 0,
        "--read-timeout": args.read_timeout > 0,
        "--body-timeout": args.body_timeout > 0,
        "--beam-size": args.beam_size is None or args.beam_size >= 1,
        "--n-best": args.n_best >= 1,
    }
    check_ranges(args, checks)
    return Limits(
        max_upload_bytes=int(args.max_upload_mb * BYTES_PER_MB),
        max_pixels=args.max_pixels,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        read_timeout_s=args.read_timeout,
        body_timeout_s=args.body_timeout,
    )


def access_from(args: argparse.Namespace) -> Access:
    """The allowed hosts: the local names, the address listened on (unless a wildcard), --allowed-host."""
    own = [] if args.host in WILDCARD_HOSTS else [args.host]
    return Access(allowed_hosts=(*LOCAL_HOSTS, *own, *args.allowed_host), allowed_origins=tuple(args.allow_origin))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    # The server refuses images over --max-pixels itself; PIL's warning above its own limit is noise.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        limits, streams = limits_from(args), stream_limits_from(args)
        app = _app(args, limits, streams)
    except (CheckpointError, DecodingOptionsError, VADUnavailableError, ValueError) as error:
        return fail(str(error))
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as error:
        return fail(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})")
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"{args.task.capitalize()} demo at http://{shown}:{port}/  (Ctrl+C to stop)", flush=True)
    if args.host in WILDCARD_HOSTS:
        names = ", ".join(access_from(args).allowed_hosts)
        print(f"Listening on every interface; clients must use one of these names: {names} (--allowed-host)")
    make_server(app, limits.read_timeout_s, streams.max_frame_bytes).run(sockets=[sock])
    return 0


def _app(args: argparse.Namespace, limits: Limits, streams: StreamLimits) -> ASGIApp:
    """The demo of ``args.task``, its checkpoint loaded."""
    if args.task == "transcription":
        from multimodal_s2s.apps.demo.live import DemoTranscriber, create_transcription_app

        transcriber = DemoTranscriber.load(args.checkpoint, args.device, args.chunk_seconds)
        return create_transcription_app(transcriber, transcriber.model_card(), streams, access_from(args))
    captioner = DemoCaptioner.load(args.checkpoint, args.device, args.beam_size, args.n_best)
    return create_app(captioner, captioner.model_card(), limits, access_from(args))

