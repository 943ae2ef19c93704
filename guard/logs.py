"""Client errors are logged as one line at most, and at a bounded rate: a client sending garbage must not be
able to fill the disk or drown the log (a 2-byte corrupt gRPC message used to log a full traceback, 200
aborted uploads 30k lines).

- ``RateLimitedLog(logger)``: ``.warning(fmt, *args)`` writes one line through a token bucket (``rate`` lines
  per second, bursts of ``burst``); lines dropped meanwhile are counted and the next line says how many.
- ``quiet_client_errors(logger_name, *markers)``: a filter on a library's logger that turns records whose
  message contains a marker into one rate-limited line without the traceback.

Thread-safe (a lock around the bucket).
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RateLimitedLog", "quiet_client_errors"]


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


class _Quiet(logging.Filter):
    def __init__(self, markers: tuple[str, ...], log: RateLimitedLog) -> None:
        super().__init__()
        self.markers = markers
        self.log = log

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not any(marker in message for marker in self.markers):
            return True
        dropped = self.log.allow()
        if dropped is None:
            return False
        detail = f": {type(record.exc_info[1]).__name__}" if record.exc_info and record.exc_info[1] else ""
        record.msg = f"client error: {message.splitlines()[0][:300]}{detail}" + (
            f" ({dropped} similar lines dropped)" if dropped else ""
        )
        record.args = None
        record.exc_info = record.exc_text = record.stack_info = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_client_errors(logger_name: str, *markers: str, rate: float = 1.0, burst: int = 10) -> None:
    """Make ``logger_name``'s records that contain one of ``markers`` one rate-limited line each."""
    logger = logging.getLogger(logger_name)
    logger.addFilter(_Quiet(markers, RateLimitedLog(logger, rate, burst)))
