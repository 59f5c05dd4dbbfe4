"""Serving the demo's ASGI app with uvicorn, set for the open web.

uvicorn closes idle keep-alive connections, but it has no limit on how long the head of a request
may take: a client that sends its headers a few bytes at a time (slowloris), or half of them and
then nothing, holds its connection for ever. ``HeadTimeoutH11Protocol`` (uvicorn's h11 protocol plus
one timer) closes a connection whose request head is not complete ``head_timeout_s`` after it opened
or after the previous answer. The body's own time limits are the app's (``service.read_upload``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("mms2s.demo")

#: Open connections at most; beyond, uvicorn answers 503 (bounds the memory of many idle clients).
MAX_CONNECTIONS = 1000
#: Size of a request head at most (h11 answers 400 beyond it).
MAX_HEAD_BYTES = 16 * 1024
#: Size of a websocket message at most, by default (beyond, the connection is closed, 1009).
MAX_FRAME_BYTES = 64 * 1024


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request head (see the module docstring)."""

    head_timeout_s = 5.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        serving = self.cycle is not None and not self.cycle.response_complete
        if serving and self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()  # a request's head has arrived and is being answered

    def on_response_complete(self) -> None:
        self._arm_head_timer()  # the next request's head starts now (super() may take it at once)
        super().on_response_complete()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            client = "%s:%s" % (self.client or ("-", 0))
            log.info("%s closed: no complete request head within %g s", client, self.head_timeout_s)
            self.transport.close()


def protocol_with_head_timeout(seconds: float) -> type[HeadTimeoutH11Protocol]:
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_s": seconds})


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (IPv6 when ``host`` is an IPv6 address; port 0: any free one).

    Raises:
        OSError: the address is taken or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def make_server(app: ASGIApp, read_timeout_s: float, max_frame_bytes: int = MAX_FRAME_BYTES) -> uvicorn.Server:
    """A uvicorn server for ``app``: no version banner, no proxy headers trusted, request heads within
    ``read_timeout_s``, idle keep-alive connections closed after it; websocket messages (wsproto) of at most
    ``max_frame_bytes``, uncompressed (no inflation bombs); logging left to the caller."""
    config = uvicorn.Config(
        app,
        http=protocol_with_head_timeout(read_timeout_s),
        ws="wsproto",
        ws_max_size=max_frame_bytes,
        ws_per_message_deflate=False,
        timeout_keep_alive=math.ceil(read_timeout_s),
        limit_concurrency=MAX_CONNECTIONS,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        log_config=None,
        access_log=True,
    )
    return uvicorn.Server(config)
