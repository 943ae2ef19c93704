"""Client errors are logged as one line at most, and at a bounded rate: a client sending garbage must not be
able to fill the disk or drown the log (a 2-byte corrupt gRPC message used to log a full traceback, 200
aborted uploads 30k lines).

- ``RateLimitedLog(logger)``: ``.warning(fmt, *args)`` writes one line through a token bucket (``rate`` lines
  per second, bursts of ``burst``); lines dropped meanwhile are counted and the next line says how many.

Thread-safe (a lock around the bucket).
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, rate: float = 1.0, burst: int = 10) -> None:
        self.logger = logger
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._dropped = 0
        self._lock = threading.Lock()

    def allow(self) -> int | None:
        """None when the line must be dropped, else how many lines were dropped before it."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1.0:
                self._dropped += 1
                return None
            self._tokens -= 1.0
            dropped, self._dropped = self._dropped, 0
            return dropped

    def warning(self, message: str, *args: object) -> None:
        dropped = self.allow()
        if dropped is None:
            return
        line = (message % args if args else message).replace("\n", " ")[:500]
        if dropped:
            line += f" ({dropped} similar lines dropped)"
        self.logger.warning("%s", line)
