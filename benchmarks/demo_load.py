"""Load and hostile clients against the captioning demo server, on 127.0.0.1 only, in one run.

Starts ``mms2s demo captioning --checkpoint CKPT --port 0`` (the command's default limits) and then,
bounded in count and time:

1. idle: 20 uploads one at a time, then 200 normal uploads at concurrency 8 (p50 / p95 latency, errors);
2. slow: 300 slow connections held open (each one re-opened as soon as the server ends it: silent
   ones, half-sent request heads, heads trickled a byte every 0.5 s, half-sent bodies) while another
   200 normal uploads run at concurrency 8; how long the server let each slow connection hang;
3. hostile: negative and huge Content-Length, a declared length longer than the body, a chunked body
   over the limit, a 13000 x 13000 PNG four times at once, a wrong Host header.

The server's RSS is read from /proc every 20 ms. Targets: peak RSS through phases 2-3 under 2x the
idle RSS; every hostile request answered (4xx / 503) or closed within 10 s; normal p95 with the slow
connections open under 3x the p95 of phase 1 at the same concurrency; no traceback on stderr.

    flock /tmp/mms2s-cpu.lock .venv/bin/python benchmarks/demo_load.py --checkpoint CKPT \\
        [--out benchmarks/results/demo_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

from multimodal_s2s.data.shapes import ShapeScenes

HOST = "127.0.0.1"
ANSWER_LIMIT_S = 10.0
NORMAL_UPLOADS, CONCURRENCY, SEQUENTIAL_UPLOADS, SLOW_CONNECTIONS = 200, 8, 20, 300
SLOW_KINDS = ("silent", "half_head", "trickled_head", "half_body")
TRICKLE_EVERY_S = 0.5
BOMB_SIDE, BOMBS = 13000, 4
RSS_EVERY_S = 0.02
START_LIMIT_S = 300
ALL_LIMIT_S = 900


def normal_image() -> bytes:
    """A 512 x 512 JPEG of a generated scene: what a person might upload."""
    buffer = io.BytesIO()
    ShapeScenes(seed=2, image_size=512)[0].image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def blank_png(width: int, height: int) -> bytes:
    """A black RGB PNG written row by row (never held decoded): few bytes, many pixels."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row, packer = b"\0" * (1 + 3 * width), zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def upload_head(name: str, lines: list[str], host: str = HOST) -> bytes:
    return "\r\n".join([f"POST /api/caption?name={name} HTTP/1.1", f"Host: {host}", *lines, "", ""]).encode()


class RssSampler(threading.Thread):
    """Samples a process's resident memory (VmRSS) until stopped; peak per phase, in MiB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.phase, self.peaks, self.stopped = pid, "start", {}, threading.Event()

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def run(self) -> None:
        while not self.stopped.wait(RSS_EVERY_S):
            try:
                rss = self.rss_mib()
            except (OSError, RuntimeError):
                return
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)


async def exchange(port: int, data: bytes, trickle: bytes = b"", limit_s: float = ANSWER_LIMIT_S) -> dict:
    """Send ``data`` (then ``trickle``, a byte every TRICKLE_EVERY_S) and read until the server closes
    or answers in full; {"status": int | None, "seconds": float, "ended": bool (answered or closed)}."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(HOST, port)
    reading = asyncio.ensure_future(read_answer(reader))
    try:
        writer.write(data)
        await writer.drain()
        for byte in trickle:
            if reading.done():
                break
            await asyncio.sleep(TRICKLE_EVERY_S)
            writer.write(bytes([byte]))
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # the server ended the connection while we wrote: its answer, if any, is still readable
    try:
        status = await asyncio.wait_for(reading, max(limit_s - (time.monotonic() - started), 0.0))
        ended = True
    except asyncio.TimeoutError:
        status, ended = None, False
    writer.close()
    return {"status": status, "seconds": time.monotonic() - started, "ended": ended}


async def read_answer(reader: asyncio.StreamReader) -> int | None:
    """The status of the server's answer after reading it whole, or None if it closed without one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        await reader.readexactly(length)
    return int(lines[0].split()[1])


async def normal_uploads(port: int, image: bytes, count: int, concurrency: int) -> dict:
    """``count`` uploads of ``image``, ``concurrency`` at a time; latency percentiles and errors."""
    gate = asyncio.Semaphore(concurrency)
    request = upload_head("photo.jpg", [f"Content-Length: {len(image)}", "Connection: close"]) + image

    async def one() -> dict:
        async with gate:
            return await exchange(port, request)

    outcomes = await asyncio.gather(*(one() for _ in range(count)))
    seconds = sorted(o["seconds"] for o in outcomes if o["status"] == 200)
    errors = [o["status"] for o in outcomes if o["status"] != 200]
    return {"requests": count, "concurrency": concurrency, "errors": len(errors), "error_statuses": errors[:10],
            "p50_s": percentile(seconds, 50), "p95_s": percentile(seconds, 95),
            "max_s": max(o["seconds"] for o in outcomes)}


def percentile(values: list[float], q: int) -> float | None:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else None


def slow_request(kind: str) -> tuple[bytes, bytes]:
    """(sent at once, then trickled) for one kind of slow connection."""
    full_head = upload_head("slow.png", ["Content-Length: 100000"])
    return {
        "silent": (b"", b""),
        "half_head": (full_head[: len(full_head) // 2], b""),
        "trickled_head": (b"", full_head),
        "half_body": (full_head + b"\0" * 1000, b""),
    }[kind]


async def hold_slow_connections(port: int, count: int, stop: asyncio.Event) -> list[dict]:
    """``count`` slow connections, each re-opened as soon as the server ends it, until ``stop``."""
    records: list[dict] = []

    async def keep(kind: str) -> None:
        while not stop.is_set():
            data, trickle = slow_request(kind)
            outcome = await exchange(port, data, trickle, limit_s=2 * ANSWER_LIMIT_S)
            records.append({"kind": kind, **outcome})

    await asyncio.gather(*(keep(SLOW_KINDS[i % len(SLOW_KINDS)]) for i in range(count)))
    return records


def hostile_requests(image: bytes, bomb: bytes) -> dict[str, list[bytes]]:
    """Name -> the raw requests sent at once for each hostile case."""
    chunk = b"%x\r\n" % 65536 + b"\0" * 65536 + b"\r\n"
    return {
        "negative_content_length": [upload_head("neg.png", ["Content-Length: -1"]) + b"\0" * 8_000_000] * 4,
        "huge_content_length": [upload_head("huge.png", ["Content-Length: 1000000000000"]) + b"\0" * 65536] * 4,
        "length_longer_than_body": [upload_head("short.png", ["Content-Length: 5000"]) + image[:100]] * 4,
        "chunked_over_limit": [upload_head("chunks.png", ["Transfer-Encoding: chunked"]) + chunk * 170] * 4,
        "pixel_bomb_13000x13000": [upload_head("bomb.png", [f"Content-Length: {len(bomb)}"]) + bomb] * BOMBS,
        "wrong_host": [upload_head("x.jpg", [f"Content-Length: {len(image)}"], "rebind.example") + image] * 4,
    }


async def hostile_cases(port: int, image: bytes, bomb: bytes) -> dict:
    results = {}
    for name, requests in hostile_requests(image, bomb).items():
        outcomes = await asyncio.gather(*(exchange(port, raw) for raw in requests))
        results[name] = {"statuses": [o["status"] for o in outcomes], "max_s": max(o["seconds"] for o in outcomes),
                         "all_ended": all(o["ended"] for o in outcomes)}
    return results


def slow_summary(records: list[dict]) -> dict:
    """Per kind of slow connection: how many the server ended, how long it let them hang, its answers."""
    summary = {}
    for kind in SLOW_KINDS:
        mine = [r for r in records if r["kind"] == kind]
        statuses = sorted({str(r["status"]) for r in mine})
        summary[kind] = {"connections": len(mine), "all_ended": all(r["ended"] for r in mine),
                         "max_held_s": max(r["seconds"] for r in mine), "statuses": statuses}
    return summary


async def measure(port: int, sampler: RssSampler, uploads: int, slow_connections: int) -> dict:
    image, bomb = normal_image(), blank_png(BOMB_SIDE, BOMB_SIDE)
    await normal_uploads(port, image, CONCURRENCY, CONCURRENCY)  # warm-up: every worker thread ran once
    sampler.phase = "idle"
    await asyncio.sleep(1.0)
    sampler.phase = "normal"
    sequential = await normal_uploads(port, image, SEQUENTIAL_UPLOADS, 1)
    normal = await normal_uploads(port, image, uploads, CONCURRENCY)
    sampler.phase = "slow"
    stop = asyncio.Event()
    holding = asyncio.ensure_future(hold_slow_connections(port, slow_connections, stop))
    await asyncio.sleep(1.0)  # all slow connections open first
    under_slow = await normal_uploads(port, image, uploads, CONCURRENCY)
    stop.set()
    slow = slow_summary(await holding)
    sampler.phase = "hostile"
    hostile = await hostile_cases(port, image, bomb)
    await asyncio.sleep(1.0)
    return {"sequential": sequential, "normal": normal, "normal_with_slow_connections_open": under_slow,
            "slow_connections": slow, "hostile": hostile}


def start_server(checkpoint: Path, stderr: io.TextIOBase) -> tuple[subprocess.Popen, int]:
    """The demo server as the command starts it, on a free port; (process, port) once it answers."""
    command = [sys.executable, "-m", "multimodal_s2s.apps.cli", "demo", "captioning", "--checkpoint",
               str(checkpoint), "--host", HOST, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = process.stdout.readline()  # "Captioning demo at http://127.0.0.1:PORT/ ..." (or EOF on failure)
    if f"http://{HOST}:" not in line:
        process.kill()
        raise RuntimeError(f"the demo server did not start (exit code {process.wait()})")
    port = int(line.split(f"http://{HOST}:")[1].split("/")[0])
    deadline = time.monotonic() + START_LIMIT_S
    health = f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    while asyncio.run(exchange(port, health))["status"] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the demo server does not answer /health")
        time.sleep(0.5)
    return process, port


def verdicts(results: dict, peaks: dict, tracebacks: int) -> dict:
    idle = peaks["idle"]
    hostile = [*results["hostile"].values(), *results["slow_connections"].values()]
    answered = all(case["all_ended"] for case in hostile) and all(
        case.get("max_s", case.get("max_held_s")) <= ANSWER_LIMIT_S for case in hostile
    )
    refused = all(s in (None, "None") or 400 <= int(s) < 500 or int(s) == 503
                  for case in hostile for s in case["statuses"])
    normal, under_slow = results["normal"], results["normal_with_slow_connections_open"]
    p95_ratio = under_slow["p95_s"] / normal["p95_s"]
    rss_ratio = max(peaks["slow"], peaks["hostile"]) / idle
    return {
        "peak_rss_over_idle": round(rss_ratio, 3), "peak_rss_under_2x_idle": rss_ratio < 2,
        "hostile_all_answered_or_closed_within_10s": answered, "hostile_answers_all_4xx_or_503": refused,
        "p95_with_slow_over_p95_idle": round(p95_ratio, 3), "p95_under_3x_idle": p95_ratio < 3,
        "normal_errors": normal["errors"] + under_slow["errors"],
        "normal_all_within_10s": max(normal["max_s"], under_slow["max_s"]) <= ANSWER_LIMIT_S,
        "tracebacks_on_stderr": tracebacks,
    }


def run(checkpoint: Path, uploads: int, slow_connections: int) -> dict:
    with tempfile.TemporaryFile("w+") as stderr:
        process, port = start_server(checkpoint, stderr)
        sampler = RssSampler(process.pid)
        sampler.start()
        try:
            measuring = measure(port, sampler, uploads, slow_connections)
            results = asyncio.run(asyncio.wait_for(measuring, ALL_LIMIT_S))
        finally:
            sampler.stopped.set()
            process.terminate()  # uvicorn shuts down gracefully on SIGTERM
            process.wait(30)
        stderr.seek(0)
        log = stderr.read().splitlines()
    tracebacks = sum(line.startswith("Traceback") for line in log)
    peaks = {phase: round(mib, 1) for phase, mib in sampler.peaks.items()}
    levels = {level: sum(f" {level} " in line for line in log) for level in ("INFO", "WARNING", "ERROR")}
    return {"results": results, "rss_mib_peak_by_phase": peaks, "stderr_lines_by_level": levels,
            "verdicts": verdicts(results, peaks, tracebacks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a captioning checkpoint")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/demo_load.json"))
    parser.add_argument("--uploads", type=int, default=NORMAL_UPLOADS, help="normal uploads in each of two runs")
    parser.add_argument("--slow-connections", type=int, default=SLOW_CONNECTIONS, help="slow connections held")
    args = parser.parse_args()
    counts = {"uploads": args.uploads, "slow_connections": args.slow_connections, "concurrency": CONCURRENCY}
    report = {"checkpoint": str(args.checkpoint), "cpus": os.cpu_count(), "counts": counts,
              **run(args.checkpoint, args.uploads, args.slow_connections)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["verdicts"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
