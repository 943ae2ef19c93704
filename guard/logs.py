"""Client errors are logged as one line at most, and at a bounded rate: a client sending garbage must not be
able to fill the disk or drown the log (a 2-byte corrupt gRPC message used to log a full traceback, 200
aborted uploads 30k lines).

- ``rate_limit_records(logger_name, *markers)``: the same bucket for a library's own per-request warnings.
- ``RateLimitedLog(logger)``: ``.warning(fmt, *args)`` writes one line through a token bucket (``rate`` lines
  per second, bursts of ``burst``); lines dropped meanwhile are counted and the next line says how many.

Thread-safe (a lock around the bucket).
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RateLimitedLog", "rate_limit_records"]


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
        self.log(logging.WARNING, message, *args)

    def error(self, message: str, *args: object) -> None:
        self.log(logging.ERROR, message, *args)

    def log(self, level: int, message: str, *args: object) -> None:
        dropped = self.allow()
        if dropped is None:
            return
        line = (message % args if args else message).replace("\n", " ")[:500]
        if dropped:
            line += f" ({dropped} similar lines dropped)"
        self.logger.log(level, "%s", line)


class _RateLimitedRecords(logging.Filter):
    def __init__(self, markers: tuple[str, ...], log: RateLimitedLog) -> None:
        super().__init__()
        self.markers, self.log = markers, log

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(marker in str(record.msg) for marker in self.markers):
            return True
        dropped = self.log.allow()
        if dropped:
            record.msg = f"{record.msg} ({dropped} similar lines dropped)"
        return dropped is not None


def rate_limit_records(logger_name: str, *markers: str) -> None:
    """Records of ``logger_name`` whose message contains a marker (a library's per-bad-request warning)
    pass at the rate of a ``RateLimitedLog``; idempotent."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _RateLimitedRecords) and f.markers == markers for f in logger.filters):
        logger.addFilter(_RateLimitedRecords(markers, RateLimitedLog(logger)))
