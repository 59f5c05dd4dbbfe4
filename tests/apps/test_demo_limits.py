"""The demo server against misbehaving clients, over real HTTP (uvicorn on a localhost port): request
sizes, timeouts, pixel bombs, host names, origins, methods, the busy answer and the log.

The captioner here is a test double (``HeldCaptioner``): no request in this file needs a model,
except that the busy test must hold one inference for as long as it likes.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from demo_fixtures import json_of, png_bytes, post_image, raw_exchange, request, serving, status_of
from PIL import Image

from multimodal_s2s.apps.demo.service import LOCAL_HOSTS, Access, Limits, create_app
from multimodal_s2s.checkpoint import ModelConfig, Task, TrainingData
from multimodal_s2s.pipelines import ModelCard

MAX_UPLOAD = 50_000
MAX_PIXELS = 100_000
READ_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 2.0
#: Far less than any timeout a test waits for, far more than a refusal takes.
PROMPT_S = 4.0
FRIEND = "http://friend.example"
LIMITS = Limits(MAX_UPLOAD, MAX_PIXELS, max_concurrency=1, max_queue=0,
                read_timeout_s=READ_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S)
CARD = ModelCard(Task.CAPTIONING, ModelConfig("test", "test", vocab_size=4), parameters=1, data=TrainingData("test"))


class HeldCaptioner:
    """Answers with the image's size; each call waits until ``release`` is set."""

    def __init__(self):
        self.release, self.entered = threading.Event(), threading.Event()
        self.release.set()
        self.calls = 0

    def describe(self, image: Image.Image) -> dict:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30)
        return {"caption": f"{image.width}x{image.height}"}


@pytest.fixture(scope="module")
def captioner():
    return HeldCaptioner()


@pytest.fixture(scope="module")
def address(captioner):
    access = Access(allowed_hosts=(*LOCAL_HOSTS, "demo.lan"), allowed_origins=(FRIEND,))
    with serving(create_app(captioner, CARD, LIMITS, access), READ_TIMEOUT_S) as address:
        yield address


@pytest.fixture(autouse=True)
def _one_line_logs_and_no_tracebacks(caplog, capfd):
    """Whatever a client does, the server logs one line per event and prints no traceback."""
    caplog.set_level(logging.INFO)
    yield
    assert all(record.exc_info is None and "\n" not in record.getMessage() for record in caplog.records)
    assert "Traceback" not in capfd.readouterr().err


def head(address, method="POST", path="/api/caption?name=x.png", lines=()) -> bytes:
    host = f"Host: {address[0]}:{address[1]}"
    return "\r\n".join([f"{method} {path} HTTP/1.1", host, *lines, "", ""]).encode("latin-1")


def test_a_good_upload_passes_every_guard(address):
    status, answer = post_image(address, png_bytes((40, 30)), "ok.png")
    assert status == 200 and answer == {"caption": "40x30"}


def test_content_length_negative_absent_or_huge_is_refused_before_the_body(address):
    raw, took = raw_exchange(address, head(address, lines=["Content-Length: -1"]) + b"x" * 1000)
    assert status_of(raw) == 400 and took < PROMPT_S  # the HTTP parser's answer, then closed
    raw, took = raw_exchange(address, head(address))
    assert status_of(raw) == 411 and "no Content-Length" in json_of(raw)["error"] and took < PROMPT_S
    huge = head(address, path="/api/caption?name=big.png", lines=["Content-Length: 1" + "0" * 12])
    raw, took = raw_exchange(address, huge)
    assert status_of(raw) == 413 and took < PROMPT_S
    assert json_of(raw)["error"].startswith("big.png: the file is too large")
    assert b"connection: close" in raw.lower()


def test_chunked_body_is_refused_once_it_passes_the_limit(address):
    piece = b"2710\r\n" + b"\0" * 10_000 + b"\r\n"  # 10,000 bytes a chunk; no last chunk is ever sent
    raw, took = raw_exchange(address, head(address, lines=["Transfer-Encoding: chunked"]) + piece * 8)
    assert status_of(raw) == 413 and took < PROMPT_S
    image = png_bytes((20, 20))
    chunked = b"%x\r\n" % len(image) + image + b"\r\n0\r\n\r\n"
    raw, _ = raw_exchange(address, head(address, lines=["Transfer-Encoding: chunked", "Connection: close"]) + chunked)
    assert status_of(raw) == 200 and json_of(raw) == {"caption": "20x20"}


def test_a_stalled_or_endless_body_gets_408(address):
    raw, took = raw_exchange(address, head(address, lines=["Content-Length: 1000"]) + b"\x89PNG")
    assert status_of(raw) == 408 and "stalled" in json_of(raw)["error"] and took < READ_TIMEOUT_S + PROMPT_S
    trickle = bytes(200)  # a byte every 0.2 s: never a pause over the read timeout, never done either
    raw, took = raw_exchange(address, head(address, lines=["Content-Length: 1000"]), trickle, every_s=0.2)
    assert status_of(raw) == 408 and f"took longer than {BODY_TIMEOUT_S:g} s" in json_of(raw)["error"]
    assert took < BODY_TIMEOUT_S + PROMPT_S


def test_a_client_leaving_mid_upload_is_one_log_line(address, caplog):
    with socket.create_connection(address) as sock:
        sock.sendall(head(address, path="/api/caption?name=gone.png", lines=["Content-Length: 1000"]) + b"\x89PNG")
        time.sleep(0.1)
    deadline = time.monotonic() + PROMPT_S
    while not any("gone.png: the client closed" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "no log line for the client that left"
        time.sleep(0.05)


def test_silent_half_sent_and_trickled_request_heads_are_closed(address):
    for data, trickle in [(b"", b""), (b"POST /api/caption HTTP/1.1\r\nHost: 127.0.0.1\r\n", b""),
                          (b"", head(address, lines=["X-Padding: " + "a" * 40]))]:
        raw, took = raw_exchange(address, data, trickle, every_s=0.05)
        assert raw == b"" and took < READ_TIMEOUT_S + PROMPT_S


def test_images_with_too_many_pixels_are_refused_before_decoding(address, captioner):
    calls = captioner.calls
    status, answer = post_image(address, png_bytes((400, 400)), "bomb.png")
    assert status == 413 and answer["error"] == (
        "bomb.png: 400 x 400 pixels (0.2 MP) is more than the limit of 0.1 MP"
    )
    assert captioner.calls == calls
    status, answer = post_image(address, b"", "empty.png")
    assert status == 400 and answer["error"] == "empty.png: the file is empty"


def test_only_allowed_host_names_are_served(address):
    port = address[1]
    for host, expected in [("evil.example", 400), (f"evil.example:{port}", 400), ("a b", 400),
                           (f"demo.lan:{port}", 200), (f"[::1]:{port}", 200), ("LOCALHOST", 200)]:
        status, headers, body = request(address, "GET", "/health", headers={"Host": host})
        assert status == expected, host
    raw, _ = raw_exchange(address, b"GET /health HTTP/1.0\r\n\r\n")
    assert status_of(raw) == 400 and "Host" in json_of(raw)["error"]
    status, _, body = request(address, "GET", "/", headers={"Host": "rebound.example"})
    assert b"--allowed-host rebound.example" in body


def test_cross_origin_posts_are_refused_unless_their_origin_is_allowed(address):
    image = png_bytes((8, 8))
    status, answer = post_image(address, image, "x.png", {"Origin": "http://evil.example"})
    assert status == 403 and "--allow-origin" in answer["error"]
    status, _ = post_image(address, image, "x.png", {"Origin": f"http://{address[0]}:{address[1]}"})
    assert status == 200
    status, headers, _ = request(address, "POST", "/api/caption?name=x.png", image, {"Origin": FRIEND})
    assert status == 200 and headers["access-control-allow-origin"] == FRIEND
    preflight = {"Origin": FRIEND, "Access-Control-Request-Method": "POST"}
    status, headers, _ = request(address, "OPTIONS", "/api/caption", headers=preflight)
    assert status == 200 and headers["access-control-allow-origin"] == FRIEND
    preflight["Origin"] = "http://evil.example"
    _, headers, _ = request(address, "OPTIONS", "/api/caption", headers=preflight)
    assert "access-control-allow-origin" not in headers
    status, _, _ = request(address, "GET", "/health", headers={"Origin": "http://evil.example"})
    assert status == 200  # reading is not writing


def test_head_options_and_wrong_methods_are_answered_without_a_server_banner(address):
    status, headers, body = request(address, "HEAD", "/")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
    assert "server" not in headers and headers["x-content-type-options"] == "nosniff"
    status, headers, _ = request(address, "OPTIONS", "/")
    assert status == 204 and headers["allow"] == "GET, HEAD, OPTIONS"
    status, headers, _ = request(address, "OPTIONS", "/api/caption")
    assert status == 204 and headers["allow"] == "POST, OPTIONS"
    status, headers, body = request(address, "GET", "/api/caption")
    assert status == 405 and set(headers["allow"].split(", ")) == {"POST", "OPTIONS"} and b"not allowed" in body
    status, headers, body = request(address, "OPTIONS", "/nowhere")
    assert status == 404 and body == b'{"error":"no page /nowhere"}' and "server" not in headers
    status, headers, body = request(address, "POST", "/api/caption?name=f.png", b"--x\r\n",
                                    {"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 415 and b"not a multipart form" in body


def test_a_full_server_answers_503_at_once(address, captioner):
    captioner.release.clear()
    captioner.entered.clear()
    first: list = []
    worker = threading.Thread(target=lambda: first.append(post_image(address, png_bytes((10, 10)), "a.png")))
    worker.start()
    try:
        assert captioner.entered.wait(10)
        status, headers, body = request(address, "GET", "/health")
        assert b'"captions_running_or_waiting":1' in body
        status, headers, body = request(address, "POST", "/api/caption?name=b.png", png_bytes((10, 10)))
        assert status == 503 and headers["retry-after"] == "1" and b"the server is busy" in body
    finally:
        captioner.release.set()
        worker.join(10)
    assert first == [(200, {"caption": "10x10"})]
