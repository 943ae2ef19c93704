"""What the attack scenarios (attack, gateway_attack, measured, exhaustion) share: ``Neighbour``, a
well-behaved client served while an attack runs; ``peak_rss`` / ``growth``, the anonymous memory an attack
makes a process hold; ``log_lines``, what the stack's processes logged; ``raw_http``, hand-built HTTP bytes
for what a client library would not send."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from reliability.probes import usage
from reliability.stack import Stack

__all__ = ["Neighbour", "growth", "log_lines", "peak_rss", "raw_http"]


class Neighbour:
    """A well-behaved client calling ``url`` every 50 ms in a thread while an attack runs. Entering waits for
    its first answer, so the pages its path uses are resident before an attack's memory baseline is taken
    (the model server releases TensorFlow's start-up pages and faults serving ones back in on first use)."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.url, self.body = url, body
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._answered = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.post(self.url, json=self.body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.failures += not ok
                self._answered.set()
                self._stop.wait(0.05)

    def __enter__(self) -> Neighbour:
        self._thread.start()
        self._answered.wait(60)  # hang guard only
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def worst_ms(self) -> float:
        return round(max(self.latencies, default=0.0) * 1000, 1)

    @property
    def median_ms(self) -> float:
        ordered = sorted(self.latencies)
        return round(ordered[len(ordered) // 2] * 1000, 1) if ordered else 0.0


@contextmanager
def peak_rss(pid: int) -> Iterator[dict[str, int]]:
    """Samples ``pid``'s anonymous RSS (what an attack can make it hold: probes.Usage) every 20 ms; yields a
    dict that holds ``start`` and, on exit, ``peak``."""
    found = {"start": usage(pid).anon_bytes, "peak": 0}
    found["peak"] = found["start"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            try:
                found["peak"] = max(found["peak"], usage(pid).anon_bytes)
            except OSError:
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join(5)
        with contextlib.suppress(OSError):
            found["peak"] = max(found["peak"], usage(pid).anon_bytes)


def growth(found: dict[str, int]) -> int:
    """How far the peak rose above the start (of ``peak_rss``'s dict)."""
    return found["peak"] - found["start"]


def raw_http(
    base_url: str, head: bytes, body: Iterable[bytes] = (), read_timeout: float = 30
) -> tuple[int, bytes, float]:
    """Send raw bytes; (status or 0, reply body, seconds until the reply). Stops sending once refused."""
    parts = urlsplit(base_url)
    started = time.perf_counter()
    with socket.create_connection(
        (parts.hostname or "127.0.0.1", parts.port or 80), timeout=read_timeout
    ) as sock:
        try:
            sock.sendall(head)
            for chunk in body:
                sock.sendall(chunk)
        except OSError:
            pass  # the server refused and closed: read what it said
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:
            pass
    seconds = time.perf_counter() - started
    head_part, _, reply = data.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1]) if head_part.startswith(b"HTTP/") else 0
    return status, reply, seconds


def log_lines(stack: Stack) -> dict[str, list[str]]:
    """Every line each of the stack's processes has logged so far, by process."""
    out = {}
    for name, proc in (("modelserver", stack.modelserver), ("gateway", stack.gateway)):
        if proc is not None:
            out[name] = proc.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return out
