"""The live transcription demo (``mms2s demo transcription``): a websocket stream of espeak-ng speech gets
committed words and a clean end; the hostile cases (an oversized frame, a stream past its length or faster
than real time, more streams than the cap, an idle stream, a wrong Host or Origin, what is not PCM) are
refused or closed within 10 s with the server's memory under 2x idle; and the page in headless Chromium
with a fake microphone fed from a recording shows committed words while it plays."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile
from asr_fixtures import join_with_pauses, random_speech_checkpoint, spoken_sentences
from demo_fixtures import headless_chromium, request, serving

from multimodal_s2s.apps import demo
from multimodal_s2s.apps.common import EXIT_BAD_SETUP
from multimodal_s2s.apps.demo.live import DemoTranscriber, create_transcription_app
from multimodal_s2s.apps.demo.page import LIVE_PAGE_SECURITY_POLICY, LIVE_SCRIPT
from multimodal_s2s.apps.demo.service import Access, StreamLimits
from multimodal_s2s.data import espeak
from multimodal_s2s.pipelines import LiveOptions, Transcriber
from multimodal_s2s.pipelines.transcription_options import PLAIN_DECODING
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE

websocket = pytest.importorskip("websocket", reason="websocket-client (a test dependency) is not installed")
pytestmark = pytest.mark.skipif(not espeak.espeak_available(), reason="espeak-ng is not installed")

CLOSED_WITHIN_S = 10
FRAME = 1600  # 0.1 s
STRICT = StreamLimits(max_streams=2, max_stream_seconds=3.0, idle_timeout_s=1.5, max_frame_bytes=32 * 1024,
                      max_ahead_seconds=1.0)


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory):
    """Random weights, whose decodings fail every check: each window's first decoding is kept."""
    path = random_speech_checkpoint(tmp_path_factory.mktemp("ckpt") / "speech.ckpt")
    return DemoTranscriber(Transcriber.from_checkpoint(path, "cpu"), replace(PLAIN_DECODING, windows="vad"),
                           LiveOptions())


def serve(transcriber: DemoTranscriber, limits: StreamLimits):
    app = create_transcription_app(transcriber, transcriber.model_card(), limits, Access())
    return serving(app, max_frame_bytes=limits.max_frame_bytes)


@pytest.fixture(scope="module")
def speech():
    waveform, _ = join_with_pauses(spoken_sentences(), [0.5, 1.0, 0.8, 1.0])
    return waveform


def pcm(waveform: np.ndarray) -> bytes:
    return (waveform * 32767).astype("<i2").tobytes()


def connect(address, rate: int = SAMPLE_RATE, **options) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://{address[0]}:{address[1]}/api/transcribe?rate={rate}",
                                       timeout=CLOSED_WITHIN_S, **options)


def closed_with(ws: websocket.WebSocket) -> tuple[list[dict], int, float]:
    """Read until the server closes: its JSON messages, the close code and the seconds it took."""
    started, messages = time.monotonic(), []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return messages, int.from_bytes(data[:2], "big"), time.monotonic() - started
        if opcode == websocket.ABNF.OPCODE_TEXT:
            messages.append(json.loads(data))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_stream_gets_committed_words_then_the_rest_at_its_end(transcriber, speech):
    with serve(transcriber, replace(StreamLimits(), max_ahead_seconds=100.0)) as address:
        ws = connect(address)
        messages = []
        for start in range(0, len(speech), FRAME):
            ws.send_binary(pcm(speech[start : start + FRAME]))
            messages.append(json.loads(ws.recv()))
        ws.send("end")
        final, code, _ = closed_with(ws)
    assert code == 1000 and final[-1]["done"] and final[-1]["seconds"] == pytest.approx(len(speech) / SAMPLE_RATE)
    committed = [word for message in [*messages, *final] for word in message["committed"]]
    assert sum(bool(m["committed"]) for m in messages) >= 2  # words settle while the stream goes on
    assert [w["start"] for w in committed] == sorted(w["start"] for w in committed) and all(
        set(w) == {"word", "start", "end"} for w in committed)
    assert final[-1]["tail"] == "" and all("error" not in m for m in messages)


def test_hostile_streams_are_closed_within_10_s_and_memory_stays_bounded(transcriber, speech):
    with serve(transcriber, STRICT) as address:
        idle_memory = rss_mb()
        cases = {
            "oversized": (lambda ws: ws.send_binary(b"\0" * (STRICT.max_frame_bytes + 2)), 1009),
            "too long": (lambda ws: [(ws.send_binary(pcm(speech[i : i + 4000])), time.sleep(0.25))
                                     for i in range(0, 4000 * 16, 4000)], 1008),
            "too fast": (lambda ws: [ws.send_binary(pcm(speech[i : i + FRAME])) for i in range(0, 30 * FRAME, FRAME)],
                         1008),
            "idle": (lambda ws: None, 1001),
            "not pcm": (lambda ws: ws.send("hello"), 1003),
            "odd bytes": (lambda ws: ws.send_binary(b"\1\2\3"), 1003),
        }
        for name, (act, expected) in cases.items():
            ws = connect(address)
            closing = (BrokenPipeError, ConnectionResetError, websocket.WebSocketConnectionClosedException)
            with contextlib.suppress(*closing):
                act(ws)  # the server may close while this sends: its close frame is still read below
            messages, code, took = closed_with(ws)
            assert code == expected and took < CLOSED_WITHIN_S, name
            assert expected == 1009 or messages[-1]["error"], name
        bad_rate = connect(address, rate=0)
        messages, code, _ = closed_with(bad_rate)
        assert code == 1008 and "rate" in messages[-1]["error"]
        assert rss_mb() < 2 * idle_memory


def test_more_streams_than_the_cap_are_refused(transcriber):
    with serve(transcriber, STRICT) as address:
        held = [connect(address) for _ in range(STRICT.max_streams)]
        for ws in held:
            ws.send_binary(b"\0\0" * FRAME)
            json.loads(ws.recv())  # open and answered
        messages, code, took = closed_with(connect(address))
        assert code == 1013 and "busy" in messages[-1]["error"] and took < CLOSED_WITHIN_S
        for ws in held:
            ws.close()


def test_a_wrong_host_or_origin_is_refused_at_the_handshake(transcriber):
    with serve(transcriber, STRICT) as address:
        for wrong in ({"host": "evil.example"}, {"origin": f"http://evil.example:{address[1]}"}):
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                connect(address, **wrong)
            assert refused.value.status_code == 403
        same_origin = connect(address, origin=f"http://127.0.0.1:{address[1]}")
        same_origin.send("end")
        assert closed_with(same_origin)[1] == 1000


def test_the_page_shows_the_model_card_and_allows_only_its_own_script(transcriber):
    with serve(transcriber, STRICT) as address:
        status, headers, body = request(address, "GET", "/")
        page = body.decode()
    assert status == 200 and headers["content-security-policy"] == LIVE_PAGE_SECURITY_POLICY
    assert "speech recognition" in page or "asr" in page
    assert "live: a pass every 1 s" in page and 'data-max-seconds="3"' in page
    assert "innerHTML" not in LIVE_SCRIPT and "insertAdjacentHTML" not in LIVE_SCRIPT
    (inline,) = re.findall("<script>(.*?)</script>", page, flags=re.DOTALL)
    assert inline == LIVE_SCRIPT


def test_page_in_headless_chromium_with_a_fake_microphone(transcriber, speech, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    recording = tmp_path / "speech.wav"
    soundfile.write(recording, np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.float32)]), SAMPLE_RATE)
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={recording}%noloop", "--autoplay-policy=no-user-gesture-required"]
    with serve(transcriber, replace(StreamLimits(), max_ahead_seconds=100.0)) as address:
        browser = headless_chromium(flags)
        try:
            browser.get(f"http://{address[0]}:{address[1]}/")
            assert "Task" in browser.find_element(By.ID, "card").text
            browser.find_element(By.ID, "record").click()
            wait = WebDriverWait(browser, 30)
            wait.until(lambda b: b.find_element(By.ID, "committed").text.strip())  # while the recording plays
            assert browser.find_element(By.ID, "record").get_attribute("aria-pressed") == "true"
            browser.find_element(By.ID, "record").click()
            wait.until(lambda b: b.find_element(By.ID, "status").text.startswith("Done"))
            assert browser.find_element(By.ID, "tail").text == ""
            problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
            assert not problems
        finally:
            browser.quit()


def test_bad_stream_options_and_checkpoints_are_one_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    for extra, message in [(["--max-streams", "0"], "--max-streams is out of range (got 0)"),
                           (["--idle-timeout", "-1"], "--idle-timeout is out of range (got -1.0)"),
                           (["--chunk-seconds", "0"], "chunk_seconds must be a finite number > 0, got 0.0")]:
        missing = tmp_path / "missing.ckpt"
        assert demo.run(parser.parse_args(["transcription", "--checkpoint", str(missing), *extra])) == EXIT_BAD_SETUP
        assert capsys.readouterr().err.strip() == f"error: {message}"
    assert demo.run(parser.parse_args(["transcription", "--checkpoint", str(missing)])) == EXIT_BAD_SETUP
    assert capsys.readouterr().err.strip() == f"error: {missing}: checkpoint not found"
