"""Helpers shared by the demo tests: a demo app served by uvicorn in a background thread, raw HTTP
exchanges (for requests that no well-behaved client library would send), and PNG bytes."""

from __future__ import annotations

import http.client
import io
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image
from starlette.types import ASGIApp

from multimodal_s2s.apps.demo.server import MAX_FRAME_BYTES, listening_socket, make_server

START_TIMEOUT_S = 20
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_PATHS = ("/usr/bin/chromedriver",)
ANSWER_TIMEOUT_S = 30


@contextmanager
def serving(
    app: ASGIApp, read_timeout_s: float = 5.0, max_frame_bytes: int = MAX_FRAME_BYTES
) -> Iterator[tuple[str, int]]:
    """``app`` on a free localhost port, served as ``mms2s demo`` serves it; yields (host, port)."""
    server = make_server(app, read_timeout_s, max_frame_bytes)
    sock = listening_socket("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the demo server did not start"
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)


def request(
    address: tuple[str, int], method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with http.client; (status, headers with lower-case names, body)."""
    connection = http.client.HTTPConnection(*address, timeout=ANSWER_TIMEOUT_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def post_image(address: tuple[str, int], data: bytes, name: str, headers: dict | None = None) -> tuple[int, dict]:
    """POST an upload as the page does; (status, JSON answer)."""
    status, _, body = request(address, "POST", f"/api/caption?name={name}", data, headers)
    return status, json.loads(body)


def raw_exchange(
    address: tuple[str, int], data: bytes, trickle: bytes = b"", every_s: float = 0.0, wait_s: float = 10.0
) -> tuple[bytes, float]:
    """Over a fresh connection, send ``data``, then ``trickle`` one byte every ``every_s`` seconds, then
    read until the server closes the connection or ``wait_s`` passes.

    Returns:
        (all bytes received, seconds from connecting until the server closed or wait_s passed).
    """
    started = time.monotonic()
    received = b""
    with socket.create_connection(address, timeout=wait_s) as sock:
        try:
            sock.sendall(data)
            for byte in trickle:
                time.sleep(every_s)
                sock.sendall(bytes([byte]))
        except OSError:  # closed by the server while sending: what it said is still readable
            pass
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received, time.monotonic() - started


def status_of(raw_response: bytes) -> int | None:
    """The status code of a raw HTTP response, or None when there is none."""
    parts = raw_response.split(b" ", 2)
    return int(parts[1]) if raw_response.startswith(b"HTTP/1.1 ") and len(parts) > 1 else None


def json_of(raw_response: bytes) -> dict:
    return json.loads(raw_response.split(b"\r\n\r\n", 1)[1])


def png_bytes(size: tuple[int, int], colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def headless_chromium(flags: tuple[str, ...] | list[str] = ()):
    """Headless Chromium through Selenium with Debian's chromium and chromedriver (and ``flags``), or skip."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    binary = next((p for p in CHROMIUM_PATHS if shutil.which(p)), None)
    driver_path = next((p for p in DRIVER_PATHS if shutil.which(p)), None)
    if binary is None or driver_path is None:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *flags):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
