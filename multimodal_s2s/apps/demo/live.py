"""The live transcription demo: ``mms2s demo transcription`` on the captioning demo's hardened service.

Routes: ``GET /`` (the page: ``page.render_live_page``), ``GET /health`` and the websocket
``/api/transcribe?rate=HZ``: the client sends 16-bit little-endian mono PCM at HZ in binary frames, and the
text ``end`` to finish; each frame is fed to a ``StreamingTranscriber`` (in the service's worker threads,
``InferenceSlots``) and answered with one JSON message ``{"committed": [{"word", "start", "end"}...],
"tail": "..."}`` (plus ``"warning"`` once, if it falls behind); ``end`` is answered with the last words and
``{"done": true, "seconds": S}`` and a normal close.

What guards it, besides the service's Host allow-list and origin check (``service.RequestGuard``: a
websocket from a host or another site's page not allowed is refused at its handshake, 403): frames larger
than ``max_frame_bytes`` close the connection (1009, uvicorn's ``ws_max_size``); at most ``max_streams``
streams are open at once (one more is told so and closed, 1013); a stream closes past
``max_stream_seconds`` of audio or of time (1008), when its audio comes faster than real time by more than
``max_ahead_seconds`` (1008: that is an upload, not a microphone), after ``idle_timeout_s`` without a frame
(1001), and on anything that is not PCM or ``end`` (1003). Each closing is one JSON ``{"error": ...}`` message,
the close reason, and one log line.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from multimodal_s2s.apps.demo.page import LIVE_PAGE_SECURITY_POLICY, render_live_page
from multimodal_s2s.apps.demo.service import (
    NO_STORE,
    Access,
    InferenceSlots,
    RequestGuard,
    StreamLimits,
    on_http_exception,
    printable,
    route,
)
from multimodal_s2s.pipelines import LiveOptions, ModelCard, Transcriber, TranscriptionOptions
from multimodal_s2s.pipelines.card import decoding_text
from multimodal_s2s.pipelines.live import LiveUpdate, StreamingTranscriber
from multimodal_s2s.speech.stream_audio import AudioStreamError, check_rate

log = logging.getLogger("mms2s.demo")

NORMAL, GOING_AWAY, UNSUPPORTED, POLICY, TRY_LATER = 1000, 1001, 1003, 1008, 1013


class DemoTranscriber:
    """The demo's one door to the ASR model: a ``Transcriber``, its options, and live streams of it."""

    def __init__(self, transcriber: Transcriber, options: TranscriptionOptions, live: LiveOptions):
        self.transcriber, self.live = transcriber, live
        self.options = transcriber.resolve_options(options)
        transcriber.speech_finder(self.options)  # the VAD, built once before the threads share it

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", chunk_seconds: float = 1.0) -> DemoTranscriber:
        """Raises CheckpointError (one line naming the file) or ValueError (a bad device or option)."""
        live = LiveOptions(chunk_seconds)  # checked before the model is loaded
        return cls(Transcriber.from_checkpoint(path, device), TranscriptionOptions(), live)

    def model_card(self) -> ModelCard:
        beam = self.transcriber.options(self.options.beam_size).beam_size
        decoding = f"{decoding_text(beam)}, live: a pass every {self.live.chunk_seconds:g} s"
        return replace(self.transcriber.model_card(), decoding=decoding)

    def open(self, rate: int) -> StreamingTranscriber:
        return self.transcriber.live(rate, self.options, self.live)


def update_message(update: LiveUpdate) -> dict[str, Any]:
    words = [{"word": w.word, "start": w.start, "end": w.end} for w in update.committed]
    return {"committed": words, "tail": update.tail_text} | ({"warning": update.warning} if update.warning else {})


class StreamClosed(Exception):
    """Why the server ends a stream: the close code and the reason (sent, closed and logged once)."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


class LiveStreams:
    """The websocket endpoint: one ``StreamingTranscriber`` per stream, under ``StreamLimits``."""

    def __init__(self, transcriber: DemoTranscriber, limits: StreamLimits):
        self.transcriber, self.limits = transcriber, limits
        self.slots = InferenceSlots(limits.max_concurrency, limits.max_streams)
        self.open = 0

    async def session(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            if self.open >= self.limits.max_streams:
                raise StreamClosed(TRY_LATER, f"the server is busy ({self.open} streams open); try again later")
            self.open += 1
            try:
                await self.follow(websocket, self.rate_of(websocket))
            finally:
                self.open -= 1
        except StreamClosed as closed:
            await self.close(websocket, closed)
        except WebSocketDisconnect:
            pass  # the client left: nothing to answer

    @staticmethod
    def rate_of(websocket: WebSocket) -> int:
        try:
            return check_rate(int(websocket.query_params.get("rate", "")))
        except (AudioStreamError, ValueError) as error:
            raise StreamClosed(POLICY, f"the stream's ?rate= must be its sample rate in Hz ({error})") from None

    async def follow(self, websocket: WebSocket, rate: int) -> None:
        """Feed the stream's frames until ``end`` (see the module docstring)."""
        live, limits = self.transcriber.open(rate), self.limits
        loop = asyncio.get_running_loop()
        started, samples = loop.time(), 0
        while True:
            left = started + limits.max_stream_seconds - loop.time()
            try:
                message = await asyncio.wait_for(websocket.receive(), timeout=max(min(limits.idle_timeout_s, left), 0))
            except TimeoutError:
                if left <= limits.idle_timeout_s:
                    raise StreamClosed(POLICY, f"the stream passed its {limits.max_stream_seconds:g} s") from None
                raise StreamClosed(GOING_AWAY, f"no audio for {limits.idle_timeout_s:g} s: closed") from None
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "end":
                update = await self.slots.run(live.finish)
                await websocket.send_json(update_message(update) | {"done": True, "seconds": samples / rate})
                await websocket.close(NORMAL)
                return
            data = message.get("bytes")
            if not data or len(data) % 2:
                raise StreamClosed(UNSUPPORTED, "send 16-bit PCM in binary frames (whole samples), then the text 'end'")
            samples += len(data) // 2
            if samples > limits.max_stream_seconds * rate:
                raise StreamClosed(POLICY, f"the stream passed its {limits.max_stream_seconds:g} s of audio")
            if samples / rate > loop.time() - started + limits.max_ahead_seconds:
                raise StreamClosed(POLICY, "the audio comes faster than real time: this page transcribes live audio")
            update = await self.slots.run(live.feed, np.frombuffer(data, dtype="<i2"))
            await websocket.send_json(update_message(update))

    @staticmethod
    async def close(websocket: WebSocket, closed: StreamClosed) -> None:
        client = websocket.client or ("-", 0)
        log.warning('%s:%s "WEBSOCKET %s" %d %s', *client, websocket.url.path, closed.code, printable(closed.reason))
        try:
            await websocket.send_json({"error": closed.reason})
            await websocket.close(closed.code, closed.reason[:120])  # a close frame's reason: at most 123 bytes
        except (WebSocketDisconnect, RuntimeError):  # gone already
            pass


def create_transcription_app(
    transcriber: DemoTranscriber, card: ModelCard, limits: StreamLimits, access: Access
) -> Starlette:
    """The live transcription demo's ASGI app."""
    streams = LiveStreams(transcriber, limits)
    page_html = render_live_page(card, limits.max_stream_seconds)

    async def page(request: Request) -> Response:
        headers = {"Content-Security-Policy": LIVE_PAGE_SECURITY_POLICY, "Cache-Control": "no-cache"}
        return HTMLResponse(page_html, headers=headers)

    async def health(request: Request) -> Response:
        state = {"status": "ok", "streams_open": streams.open, "max_streams": limits.max_streams}
        return JSONResponse(state, headers=NO_STORE)

    routes = [
        route("/", page, "GET"),
        route("/health", health, "GET"),
        WebSocketRoute("/api/transcribe", streams.session),
    ]
    middleware = [Middleware(RequestGuard, access=access)]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: on_http_exception})
