"""File descriptors are the server's own before they are its clients': a connection flood must never take the
descriptors a version scan, a model load or a log line needs (issue 25: 20,000 idle connections took the
model server to its open-file limit and the next scan unloaded every model).

- ``open_file_limit()`` raises the soft RLIMIT_NOFILE to the hard one (the kernel default soft limit, 1024,
  is far below what a server may use) and returns it.
- ``connection_budget(requested, ports)``: connections each listening port may hold - ``requested``, capped
  so that all ``ports`` together leave ``RESERVED_DESCRIPTORS`` for the server's own work.
- ``AcceptGuard(loop)``: when ``accept()`` fails with EMFILE/ENFILE anyway (another part of the process
  holds the descriptors), asyncio logs a full traceback on every retry (``socket.accept() out of system
  resource``, once a second per port). The guard logs one rate-limited line instead (``guard.logs``), counts
  it, and sheds the waiting connections with the classic spare descriptor: it closes a descriptor held for
  that moment, accepts and closes each pending connection (the client sees a reset, not a hang in the
  backlog), then takes its spare back. Other exceptions go to the previous handler.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import socket
from typing import Any

from guard.logs import RateLimitedLog

__all__ = ["RESERVED_DESCRIPTORS", "AcceptGuard", "connection_budget", "open_file_limit"]

# Kept free of connections: version scans, model loads (TensorFlow opens every variable shard), config
# files, sibling sockets, logs.
RESERVED_DESCRIPTORS = 256
_MIN_PER_PORT = 16

log = RateLimitedLog(logging.getLogger("guard.descriptors"), rate=1 / 60, burst=1)


def open_file_limit() -> int:
    """The soft RLIMIT_NOFILE, raised to the hard limit first (never lowered)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_budget(requested: int, ports: int, limit: int | None = None) -> int:
    """Connections one of ``ports`` listening ports may hold: ``requested`` (0 = as many as fit), capped so
    that ``RESERVED_DESCRIPTORS`` of the open-file ``limit`` stay free; at least a few per port."""
    limit = open_file_limit() if limit is None else limit
    fits = max(_MIN_PER_PORT, (limit - RESERVED_DESCRIPTORS) // max(1, ports))
    budget = min(requested, fits) if requested > 0 else fits
    logging.getLogger("guard.descriptors").info(
        "connections per port: at most %d (open-file limit %d, %d kept for the server)",
        budget,
        limit,
        RESERVED_DESCRIPTORS,
    )
    return budget


class AcceptGuard:
    """The event loop's exception handler for accept() out of descriptors; ``shed`` counts the connections
    closed at once, ``events`` the failed accepts."""

    _OUT_OF_RESOURCE = "socket.accept() out of system resource"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events = 0
        self.shed = 0
        self._previous = loop.get_exception_handler()
        self._spare: int | None = _open_spare()
        loop.set_exception_handler(self._handle)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") != self._OUT_OF_RESOURCE or not isinstance(exc, OSError):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.events += 1
        shed = self._shed(getattr(context.get("socket"), "_sock", None))
        log.error(
            "accept() failed: %s (the process is at its open-file limit); closed %d waiting connections, "
            "retrying",
            exc.strerror or exc,
            shed,
        )

    def _shed(self, listening: socket.socket | None) -> int:
        if self._spare is None:  # taken by another part of the process last time: try again
            self._spare = _open_spare()
        if self._spare is None or not isinstance(listening, socket.socket):
            return 0
        os.close(self._spare)
        shed = 0
        try:
            for _ in range(1024):
                try:
                    conn, _ = listening.accept()
                except OSError:  # BlockingIOError: none left waiting; EMFILE: the spare went elsewhere
                    break
                conn.close()
                shed += 1
        finally:
            self._spare = _open_spare()
        self.shed += shed
        return shed


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        return None
