"""HTTP/1.1 framing limits and timeouts for uvicorn's httptools protocol, which has none of its own: without
them a 64 MB header took 8 s of quadratic parsing and slowed every other client, and a client could hold a
connection for ever by sending its headers or body slowly.

``protocol_class(limits, error_body)`` returns a uvicorn ``http=`` protocol class that, per connection:

- answers **400** and closes when the request line (the URL) passes ``max_request_line_bytes``, and **431**
  when the request head (request line + headers) passes ``max_header_bytes`` - counted per chunk received,
  before the parser has to hold more than one chunk beyond the limit;
- answers **408** and closes when the head is not complete ``header_timeout`` seconds after it began (or
  after the connection opened), or when the body stalls: no byte for ``body_timeout`` seconds while the
  application waits for it (a paused read, where the application is the slow side, never counts);
- with ``body_deadline``, also answers **408** and closes when the whole body has not arrived that many
  seconds after the head (a body dripping one byte every few seconds never stalls, and held a socket and a
  descriptor for ever); a read the application paused at that moment gets until it reads again;
- with ``max_connections``, answers **503** and closes a new connection at once when that many are already
  open on this server (``guard.descriptors.connection_budget`` leaves the process descriptors of its own).

A reply with ``Connection: close`` (the 413s of both servers) ends the connection, so the rest of an
oversized body is never read.

Each refusal is logged as one rate-limited line (``guard.logs``). Everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from guard.logs import RateLimitedLog, rate_limit_records

__all__ = ["HttpLimits", "protocol_class"]

log = RateLimitedLog(logging.getLogger("guard.http"))


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    max_request_line_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_deadline: float | None = None  # whole body, from the end of the head; None: only body_timeout
    max_connections: int = 0  # open connections; 0 = no bound


def _plain(code: str, message: str) -> bytes:
    del code
    return message.encode()


def protocol_class(
    limits: HttpLimits, error_body: Callable[[str, str], bytes] = _plain, content_type: str = "text/plain"
) -> type[asyncio.Protocol]:
    """A uvicorn httptools protocol enforcing ``limits``; ``error_body(code, message)`` renders refusals."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    rate_limit_records("uvicorn.error", "Invalid HTTP request", "Unsupported upgrade request")

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True
            self._head_bytes = 0
            self._last_data = 0.0
            self._body_started = 0.0
            self._timer: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if limits.max_connections and len(self.server_state.connections) > limits.max_connections:
                self._refuse(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "too_many_connections",
                    f"the server holds {limits.max_connections} connections; retry later",
                )
                return
            self._arm(limits.header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._last_data = self.loop.time()
            super().data_received(data)
            if not self._in_head or self.transport.is_closing():
                return
            self._head_bytes += len(data)
            if len(getattr(self, "url", b"")) > limits.max_request_line_bytes:
                self._refuse(
                    HTTPStatus.BAD_REQUEST,
                    "request_line_too_long",
                    f"request line is over {limits.max_request_line_bytes} bytes; send a shorter URL",
                )
            elif self._head_bytes > limits.max_header_bytes:
                self._refuse(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    f"request headers are over {limits.max_header_bytes} bytes; send fewer or shorter ones",
                )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            if self._timer is None:
                self._arm(limits.header_timeout)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._body_started = self.loop.time()
            self._arm(self._body_wait(limits.body_timeout))
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _expired(self) -> None:
            self._timer = None
            if self.transport is None or self.transport.is_closing():
                return
            if self._in_head:
                self._refuse(
                    HTTPStatus.REQUEST_TIMEOUT,
                    "header_timeout",
                    f"request headers not received within {limits.header_timeout:g} s",
                )
                return
            idle = self.loop.time() - self._last_data
            if self.flow.read_paused:
                self._arm(limits.body_timeout)
                return
            if limits.body_deadline is not None and self._body_wait(limits.body_timeout) <= 0:
                self._refuse(
                    HTTPStatus.REQUEST_TIMEOUT,
                    "body_deadline",
                    f"request body not received within {limits.body_deadline:g} s",
                )
                return
            if idle < limits.body_timeout:
                self._arm(self._body_wait(limits.body_timeout - idle))
                return
            self._refuse(
                HTTPStatus.REQUEST_TIMEOUT,
                "body_timeout",
                f"request body stalled: no byte for {limits.body_timeout:g} s",
            )

        def _body_wait(self, idle_left: float) -> float:
            """Seconds until the next body check: the idle timeout's, or the deadline's when sooner."""
            if limits.body_deadline is None:
                return idle_left
            left = self._body_started + limits.body_deadline - self.loop.time()
            return max(0.0, min(idle_left, left))

        def _refuse(self, status: HTTPStatus, code: str, message: str) -> None:
            self._disarm()
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
            log.warning("refused a request from %s: %d %s", client, status.value, message)
            cycle = getattr(self, "cycle", None)
            if self._in_head or cycle is None or not cycle.response_started:
                body = error_body(code, message)
                head = (
                    f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: {content_type}\r\n"
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
                ).encode("latin-1")
                self.transport.write(head + body)
            self.transport.close()

    return LimitedHttpToolsProtocol
