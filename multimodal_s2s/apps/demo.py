"""Serve a demo web page for a checkpoint (localhost only, unless --host says otherwise).

    mms2s demo captioning --checkpoint runs/.../best.ckpt [--host 127.0.0.1] [--port 8000]

Open the printed address, upload an image and see its caption, the alternatives of the beam, and
for each generated word a heatmap of the decoder's cross-attention over the image (where the model
looked). Files that are not images, corrupt ones and uploads over ``--max-upload-mb`` get a clear
message on the page. The server is Python's ``http.server``: ``GET /`` is the page and
``POST /api/caption?name=FILE`` takes the raw image bytes and answers JSON.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image, ImageOps
from torch import Tensor

from multimodal_s2s.apps.demo_page import BYTES_PER_MB, render_page
from multimodal_s2s.checkpoint import CheckpointError
from multimodal_s2s.data.images import ImageLoadError, load_image
from multimodal_s2s.decoding import DecodingOptionsError
from multimodal_s2s.pipelines import Captioner, json_score

DEMOS = ("captioning",)
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_N_BEST = 3
#: Longest side of the preview and heatmap images sent to the page (images are scaled to it).
DISPLAY_SIDE = 256
#: Heatmap colours from no attention to the most, and their opacity over the image.
HEATMAP_COLOURS = ("#10106e", "#e8412b", "#ffe74c")
HEATMAP_OPACITY = 0.6
#: An oversized upload is read (and dropped) up to this many bytes, so the browser gets the answer.
DRAIN_LIMIT_BYTES = 256 * BYTES_PER_MB
DRAIN_CHUNK_BYTES = BYTES_PER_MB
UPLOAD_NAME_LIMIT = 200
#: Characters replaced in an upload's name before it becomes a temporary file's name.
UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w.-]")
EXIT_BAD_SETUP = 2


class UploadError(ValueError):
    """An upload that cannot be captioned; the message is shown on the page."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attention_overlay(image: Image.Image, weights: Tensor) -> Image.Image:
    """Weights (h, w) over the image's grid -> a heatmap (scaled to its maximum) blended over ``image``."""
    values = weights.float().clamp_min(0).numpy()
    values = values / max(float(values.max()), np.finfo(np.float32).tiny)
    grey = Image.fromarray(np.rint(values * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    colours = ImageOps.colorize(grey, black=HEATMAP_COLOURS[0], mid=HEATMAP_COLOURS[1], white=HEATMAP_COLOURS[2])
    return Image.blend(image, colours, HEATMAP_OPACITY)


class CaptionDemo:
    """What the page's endpoint does: an uploaded file -> the JSON answer (or an UploadError)."""

    def __init__(self, captioner: Captioner, options: dict[str, int], max_upload_bytes: int):
        self.captioner = captioner
        self.options = {**options, "return_attention": True}
        self.max_upload_bytes = max_upload_bytes
        self.lock = threading.Lock()  # one decoding at a time: the model is shared

    def page(self) -> str:
        config = self.captioner.header.model
        details = (
            f"encoder {config.encoder}, decoder {config.decoder}, vocabulary {config.vocab_size}, "
            f"beam {self.captioner.options(**self.options).beam_size}"
        )
        return render_page("Image captioning demo", details, self.max_upload_bytes)

    def answer(self, data: bytes, name: str) -> dict[str, Any]:
        """Caption the uploaded bytes of file ``name``."""
        if not data:
            raise UploadError(f"{name}: the file is empty")
        if len(data) > self.max_upload_bytes:
            raise UploadError(self.too_large(name, len(data)), HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        image = _load_upload(data, name)
        with self.lock:
            caption = self.captioner([image], **self.options)[0]
        scale = DISPLAY_SIDE / max(image.size)  # small images are enlarged too, so their heatmaps are legible
        preview = image.resize([max(1, round(side * scale)) for side in image.size], Image.BICUBIC)
        maps = caption.attention
        return {
            "caption": caption.text,
            "score": json_score(caption.score),
            "alternatives": [{"caption": h.text, "score": json_score(h.score)} for h in caption.n_best],
            "image": png_data_url(preview),
            "words": [] if maps is None else [
                {"word": word, "heatmap": png_data_url(attention_overlay(preview, weights))}
                for word, weights in zip(caption.words, maps, strict=True)
            ],
            "attention_note": None if maps is not None else "This model's attention does not map onto the image.",
        }  # fmt: skip

    def too_large(self, name: str, size: int) -> str:
        limit = self.max_upload_bytes / BYTES_PER_MB
        return f"{name}: the file is too large ({size / BYTES_PER_MB:.1f} MB; the limit is {limit:.3g} MB)"


def _load_upload(data: bytes, name: str) -> Image.Image:
    """Bytes of an uploaded file -> RGB image via ``load_image`` (errors name the upload, not a temp file)."""
    safe_name = UNSAFE_NAME_CHARACTERS.sub("_", Path(name).name).lstrip(".") or "upload"
    with tempfile.TemporaryDirectory(prefix="mms2s-demo-") as folder:
        path = Path(folder) / safe_name
        path.write_bytes(data)
        try:
            return load_image(path)
        except ImageLoadError as error:
            raise UploadError(str(error).replace(str(path), safe_name)) from None


def make_handler(demo: CaptionDemo) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``demo``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "mms2s-demo"

        def do_GET(self) -> None:
            if urlparse(self.path).path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, demo.page().encode("utf-8"), "text/html; charset=utf-8")
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            if url.path != "/api/caption":
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {url.path}"})
                return
            name = (parse_qs(url.query).get("name") or ["upload"])[0][:UPLOAD_NAME_LIMIT]
            try:
                size = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "the upload has no Content-Length"})
                return
            if size > demo.max_upload_bytes:
                self._drain(size)
                self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": demo.too_large(name, size)})
                return
            try:
                self._send_json(HTTPStatus.OK, demo.answer(self.rfile.read(size), name))
            except UploadError as error:
                self._send_json(error.status, {"error": str(error)})

        def _drain(self, size: int) -> None:
            """Read and drop an oversized body (up to DRAIN_LIMIT_BYTES), then close the connection."""
            remaining = min(size, DRAIN_LIMIT_BYTES)
            while remaining > 0 and (chunk := self.rfile.read(min(remaining, DRAIN_CHUNK_BYTES))):
                remaining -= len(chunk)
            self.close_connection = True

        def _send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.address_string()} {format % args}", file=sys.stderr)

    return Handler


def make_server(demo: CaptionDemo, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``demo`` (port 0: any free port; see ``server.server_address``)."""
    server = ThreadingHTTPServer((host, port), make_handler(demo))
    server.daemon_threads = True
    return server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=DEMOS, help="which demo page")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of that task (.ckpt)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    parser.add_argument("--beam-size", type=int, default=None, help="beam width (default: the checkpoint's)")
    parser.add_argument("--n-best", type=int, default=DEFAULT_N_BEST, help="alternatives shown (at most the beam)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest upload accepted")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


def run(args: argparse.Namespace) -> int:
    if args.max_upload_mb <= 0:
        return _fail(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.beam_size is not None and args.beam_size < 1:
        return _fail(f"--beam-size must be >= 1, got {args.beam_size}")
    try:
        captioner = Captioner.from_checkpoint(args.checkpoint, args.device)
        beam_size = captioner.options(args.beam_size).beam_size
        options = {"beam_size": beam_size, "n_best": min(args.n_best, beam_size)}
        captioner.options(**options)
        demo = CaptionDemo(captioner, options, int(args.max_upload_mb * BYTES_PER_MB))
        server = make_server(demo, args.host, args.port)
    except (CheckpointError, DecodingOptionsError, ValueError) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})")
    host, port = server.server_address[:2]
    print(f"Captioning demo at http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_SETUP
