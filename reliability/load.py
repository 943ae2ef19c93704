"""Load: worker threads sending a list of requests round-robin to the gateway until stopped or until a total
count is reached, recording every reply (status 0 = no HTTP reply: connection error or client timeout)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from reliability.payloads import Request

__all__ = ["Load", "Sample", "summarize"]


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic()
    seconds: float
    status: int
    name: str
    detail: str = ""


class Load:
    def __init__(
        self,
        base_url: str,
        requests: list[Request],
        *,
        workers: int = 4,
        total: int | None = None,
        timeout: float = 15.0,
    ) -> None:
        self._base_url = base_url
        self._requests = requests
        self._workers = workers
        self._total = total
        self._timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self.samples: list[Sample] = []
        self._threads: list[threading.Thread] = []

    def _take(self) -> Request | None:
        with self._lock:
            if self._stop.is_set() or (self._total is not None and self._next >= self._total):
                return None
            request = self._requests[self._next % len(self._requests)]
            self._next += 1
            return request

    def _work(self) -> None:
        with httpx.Client(base_url=self._base_url, timeout=self._timeout) as client:
            while (request := self._take()) is not None:
                started = time.monotonic()
                try:
                    response = client.post(request.path, **request.send_kwargs())
                    status, detail = (
                        response.status_code,
                        (response.text[:300] if response.status_code >= 400 else ""),
                    )
                except httpx.HTTPError as exc:
                    status, detail = 0, f"{type(exc).__name__}: {exc}"[:300]
                sample = Sample(started, time.monotonic() - started, status, request.name, detail)
                with self._lock:
                    self.samples.append(sample)

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self._workers)]
        for thread in self._threads:
            thread.start()
        return self

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def sent(self) -> int:
        with self._lock:
            return len(self.samples)

    def wait(self) -> list[Sample]:
        for thread in self._threads:
            thread.join()
        return self.samples

    def stop(self) -> list[Sample]:
        self._stop.set()
        return self.wait()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def summarize(samples: list[Sample]) -> dict[str, object]:
    latencies = sorted(s.seconds for s in samples)

    def pct(q: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1) if latencies else 0.0
        )

    statuses = Counter(str(s.status) for s in samples)
    return {
        "requests": len(samples),
        "statuses": dict(sorted(statuses.items())),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else 0.0,
    }
