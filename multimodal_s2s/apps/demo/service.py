"""The demo as an ASGI app (Starlette), made to face the open web.

Routes: ``GET /`` (the page), ``GET /examples/NAME`` (the bundled example images), ``GET /health`` and
``POST /api/caption?name=FILE`` (the image's bytes as the body; a JSON answer). Every route answers
HEAD (with GET) and OPTIONS (204 and ``Allow``).

What guards it: requests must name an allowed host (``Host``; DNS rebinding), cross-origin writes
are refused unless their origin is allowed, an upload's body is bounded while it is read (a too large
``Content-Length`` is refused before reading, a chunked body as soon as it passes the limit) and in
time (``read_timeout_s`` per pause, ``body_timeout_s`` in all), images are refused from their header
when they have too many pixels, and they are decoded and captioned in at most ``max_concurrency``
worker threads with at most ``max_queue`` more waiting; beyond that the answer is 503. Every refusal
is one JSON answer ``{"error": "..."}`` and one log line.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from multimodal_s2s.apps.demo.captioner import DemoCaptioner
from multimodal_s2s.apps.demo.examples import EXAMPLES_DIR, bundled_examples
from multimodal_s2s.apps.demo.page import BYTES_PER_MB, PAGE_SECURITY_POLICY, render_page
from multimodal_s2s.apps.demo.server import MAX_FRAME_BYTES
from multimodal_s2s.pipelines import ModelCard
from multimodal_s2s.preprocessing.images import ImageLoadError, ImageTooLargeError, load_image

log = logging.getLogger("mms2s.demo")

#: Host names a browser on this machine uses; the defaults of the Host allow-list.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Headers of every answer: no MIME sniffing, no framing by other sites, no referrer leaks.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"))
NO_STORE = {"Cache-Control": "no-store"}
HOST_HEADER = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")
UPLOAD_NAME_LIMIT = 200
#: Characters of an upload's name that are replaced before it is shown or logged.
UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w .,()+-]")
LOG_TEXT_LIMIT = 200


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the server (the defaults are the command's)."""

    max_upload_bytes: int = 10 * BYTES_PER_MB
    max_pixels: int = 40_000_000
    max_concurrency: int = 2
    max_queue: int = 16
    read_timeout_s: float = 5.0
    body_timeout_s: float = 30.0


@dataclass(frozen=True)
class StreamLimits:
    """What the live transcription demo's websocket streams may ask (``live``; the defaults are the command's)."""

    max_streams: int = 4
    max_stream_seconds: float = 300.0
    idle_timeout_s: float = 10.0
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_concurrency: int = 2
    max_ahead_seconds: float = 5.0  # audio may come this far ahead of real time (a microphone does not)


@dataclass(frozen=True)
class Access:
    """Who may ask: the host names the server answers to ("*": any) and the other origins whose pages
    may post to it."""

    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)


class Refusal(HTTPException):
    """A request the demo will not serve; ``close``: end the connection (its body may be unread)."""

    def __init__(self, status: int, message: str, *, close: bool = False, headers: Mapping[str, str] | None = None):
        headers = {**(headers or {}), **({"Connection": "close"} if close else {})}
        super().__init__(status, message, headers)


class Busy(Exception):
    """All inference slots and the waiting queue are taken."""


def printable(text: str) -> str:
    """``text`` for a log line: control characters escaped, at most LOG_TEXT_LIMIT characters."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text[:LOG_TEXT_LIMIT])


def refusal_response(scope: Scope, status: int, message: str, headers: Mapping[str, str] | None) -> Response:
    """The JSON answer to a refused request, and its one log line."""
    client = scope.get("client") or ("-", 0)
    log.warning('%s:%s "%s %s" %d %s', *client, scope["method"], printable(scope["path"]), status, printable(message))
    return JSONResponse({"error": message}, status, headers={**NO_STORE, **(headers or {})})


async def on_http_exception(request: Request, error: Exception) -> Response:
    """Starlette's HTTPExceptions (ours and the router's 404 / 405) as JSON answers."""
    assert isinstance(error, HTTPException)
    message = error.detail
    if not isinstance(error, Refusal):
        message = {404: f"no page {request.url.path}", 405: f"{request.method} is not allowed here"}.get(
            error.status_code, message
        )
    return refusal_response(request.scope, error.status_code, message, error.headers)


class InferenceSlots:
    """Blocking calls in at most ``running`` worker threads, at most ``waiting`` more queued; beyond
    that ``run`` raises Busy at once."""

    def __init__(self, running: int, waiting: int):
        self.executor = ThreadPoolExecutor(max_workers=running, thread_name_prefix="mms2s-demo")
        self.capacity = running + waiting
        self.admitted = 0  # running or queued; changed on the event loop only

    @property
    def full(self) -> bool:
        return self.admitted >= self.capacity

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        if self.full:
            raise Busy
        self.admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)
        finally:
            self.admitted -= 1


class RequestGuard:
    """ASGI middleware: refuses requests (and websockets) for hosts not allowed and cross-origin writes
    (and websockets) from origins not allowed; adds SECURITY_HEADERS to every answer."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app = app
        self.any_host = "*" in access.allowed_hosts
        self.hosts = {host.strip("[]").rstrip(".").lower() for host in access.allowed_hosts}
        self.origins = set(access.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if scope["type"] == "websocket":  # refused at the handshake (uvicorn answers 403)
            if problem:
                client = scope.get("client") or ("-", 0)
                log.warning('%s:%s "WEBSOCKET %s" refused: %s', *client, printable(scope["path"]), problem[1])
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.app(scope, receive, send)
            return
        send = self.with_security_headers(send)
        if problem:
            await refusal_response(scope, problem[0], problem[1], {"Connection": "close"})(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def problem(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request is refused, else None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        match = HOST_HEADER.fullmatch(host)
        if match is None:
            return 400, f"bad or missing Host header {host!r}"
        name = match["host"].strip("[]").rstrip(".").lower()
        if not self.any_host and name not in self.hosts:
            return 400, f"host {name!r} is not served here (start the demo with --allowed-host {name} to serve it)"
        origin = headers.get("origin")
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        same_origin = f"{scheme}://{host}".lower()  # a websocket's page is served over http(s)
        cross_origin = origin is not None and origin.lower() != same_origin
        writes = scope.get("method", "WEBSOCKET") not in SAFE_METHODS  # a websocket may write
        if writes and cross_origin and not {origin, "*"} & self.origins:
            return 403, f"cross-origin requests from {origin!r} are refused (see --allow-origin)"
        return None

    @staticmethod
    def with_security_headers(send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        return send_with_headers


def upload_name(raw: str | None) -> str:
    """The name an upload is called in messages and logs: its last path part, odd characters replaced."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1][:UPLOAD_NAME_LIMIT]
    return UNSAFE_NAME_CHARACTERS.sub("_", name).strip() or "upload"


def too_large(name: str, size: int | None, limit: int) -> str:
    told = f"more than {limit / BYTES_PER_MB:.3g} MB" if size is None else f"{size / BYTES_PER_MB:.1f} MB"
    return f"{name}: the file is too large ({told}; the limit is {limit / BYTES_PER_MB:.3g} MB)"


async def read_upload(request: Request, name: str, limits: Limits) -> io.BytesIO:
    """The request's body, refused (Refusal) when its declared or actual size passes the limit, when it
    pauses longer than ``read_timeout_s`` or takes longer than ``body_timeout_s`` in all, or when its
    length is not declared (neither Content-Length nor chunked)."""
    declared = request.headers.get("content-length")
    if declared is None and "chunked" not in request.headers.get("transfer-encoding", "").lower():
        raise Refusal(411, f"{name}: the upload has no Content-Length", close=True)
    if declared is not None and (not declared.isdigit() or int(declared) > limits.max_upload_bytes):
        status = 413 if declared.isdigit() else 400
        message = too_large(name, int(declared), limits.max_upload_bytes) if status == 413 else "bad Content-Length"
        raise Refusal(status, message, close=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.body_timeout_s
    body, chunks = io.BytesIO(), request.stream()
    while True:
        wait = min(limits.read_timeout_s, deadline - loop.time())
        try:
            chunk = await asyncio.wait_for(anext(chunks), timeout=max(wait, 0.0))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            late = loop.time() >= deadline
            took = f"took longer than {limits.body_timeout_s:g} s" if late else f"stalled {wait:g} s"
            raise Refusal(408, f"{name}: the upload {took}", close=True) from None
        body.write(chunk)
        if body.tell() > limits.max_upload_bytes:
            raise Refusal(413, too_large(name, None, limits.max_upload_bytes), close=True)
    body.seek(0)
    return body


class DemoService:
    """The endpoints, bound to one captioner, its model card and the limits."""

    def __init__(self, captioner: DemoCaptioner, card: ModelCard, limits: Limits):
        self.captioner, self.limits = captioner, limits
        self.slots = InferenceSlots(limits.max_concurrency, limits.max_queue)
        examples = bundled_examples()
        self.examples = {example.file: (EXAMPLES_DIR / example.file).read_bytes() for example in examples}
        self.page_html = render_page(card, examples, limits.max_upload_bytes)

    async def page(self, request: Request) -> Response:
        headers = {"Content-Security-Policy": PAGE_SECURITY_POLICY, "Cache-Control": "no-cache"}
        return HTMLResponse(self.page_html, headers=headers)

    async def example(self, request: Request) -> Response:
        data = self.examples.get(request.path_params["name"])
        if data is None:
            raise Refusal(404, f"no example {request.path_params['name']}")
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def health(self, request: Request) -> Response:
        limits = self.limits
        state = {"status": "ok", "captions_running_or_waiting": self.slots.admitted,
                 "max_concurrency": limits.max_concurrency, "max_queue": limits.max_queue}
        return JSONResponse(state, headers=NO_STORE)

    async def caption(self, request: Request) -> Response:
        name = upload_name(request.query_params.get("name"))
        if self.slots.full:
            raise self.busy(close=True)
        if request.headers.get("content-type", "").lower().startswith("multipart/"):
            raise Refusal(415, f"{name}: send the image's bytes as the body, not a multipart form", close=True)
        try:
            body = await read_upload(request, name, self.limits)
            if not body.getbuffer().nbytes:
                raise Refusal(400, f"{name}: the file is empty")
            answer = await self.slots.run(self.describe, body, name)
        except ClientDisconnect:
            raise Refusal(400, f"{name}: the client closed the connection during the upload", close=True) from None
        except Busy:
            raise self.busy(close=False) from None
        return JSONResponse(answer, headers=NO_STORE)

    def describe(self, body: io.BytesIO, name: str) -> dict[str, Any]:
        """In a worker thread: the upload's pixel count from its header, then decoding and captioning."""
        try:
            image = load_image(body, max_pixels=self.limits.max_pixels, name=name)
        except ImageTooLargeError as error:
            raise Refusal(413, str(error)) from None
        except ImageLoadError as error:
            raise Refusal(400, str(error)) from None
        try:
            return self.captioner.describe(image)
        except Exception as error:  # the server's boundary: one line, never a traceback
            log.error("captioning %s failed: %s: %s", name, type(error).__name__, printable(str(error)))
            raise Refusal(500, f"{name}: captioning failed ({type(error).__name__})") from None

    def busy(self, close: bool) -> Refusal:
        message = f"the server is busy ({self.slots.admitted} captions running or waiting); try again shortly"
        return Refusal(503, message, close=close, headers={"Retry-After": "1"})


def route(path: str, endpoint: Callable[[Request], Awaitable[Response]], method: str) -> Route:
    """``path`` answering ``method`` (and HEAD with GET) and OPTIONS (204, ``Allow``)."""
    allowed = ", ".join([method, *(["HEAD"] if method == "GET" else []), "OPTIONS"])

    async def answer(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allowed})
        return await endpoint(request)

    return Route(path, answer, methods=[method, "OPTIONS"])


def create_app(captioner: DemoCaptioner, card: ModelCard, limits: Limits, access: Access) -> Starlette:
    """The demo's ASGI app."""
    service = DemoService(captioner, card, limits)
    middleware = [Middleware(RequestGuard, access=access)]
    if access.allowed_origins:
        allowed = list(access.allowed_origins)
        middleware.append(Middleware(CORSMiddleware, allow_origins=allowed, allow_methods=["GET", "POST"]))
    routes = [
        route("/", service.page, "GET"),
        route("/examples/{name}", service.example, "GET"),
        route("/health", service.health, "GET"),
        route("/api/caption", service.caption, "POST"),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: on_http_exception})
