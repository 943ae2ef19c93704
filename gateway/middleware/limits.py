"""Request limits as ASGI middleware: the per-client rate limit (``RateLimit``, at the end) and the body
limit: refuses a body over the limit whether or not it declares its length.

A declared ``Content-Length`` over the limit is answered 413 before anything is read; a chunked body is
counted as it streams, and the request fails with :class:`PayloadTooLarge` (413) as soon as it passes the
limit, so the multipart parser never spools more than the limit to disk.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import PayloadTooLarge, error_body

__all__ = ["BodyLimit", "RateLimit", "RateLimiter", "client_of"]


class BodyLimit:
    """``limit`` for multipart bodies (files are spooled), ``json_limit`` for every other body (held in
    memory whole), so a JSON body is refused past ``json_limit`` while it streams, never after buffering;
    ``small_limit`` for every body but an inference call's (FastAPI parses a JSON body before it checks the
    admin token)."""

    INFERENCE = (":classify", ":predict", ":regress", ":explain")

    def __init__(
        self, app: ASGIApp, limit: int, json_limit: int | None = None, small_limit: int | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.json_limit = limit if json_limit is None else json_limit
        self.small_limit = small_limit

    @staticmethod
    def _message(limit: int, multipart: bool) -> str:
        if multipart:
            return f"request body is over {limit} bytes; send fewer or smaller files"
        return f"JSON body is over {limit} bytes; send fewer or shorter items"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.limit if multipart else self.json_limit
        if self.small_limit is not None and not str(scope.get("path", "")).endswith(self.INFERENCE):
            limit = min(limit, self.small_limit)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            body = json.dumps(error_body("payload_too_large", self._message(limit, multipart))).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"connection", b"close"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(self._message(limit, multipart))
            return message

        await self.app(scope, counted, send)


def client_of(host: str) -> str:
    """The client a peer address stands for (rate limit, canary rule): an IPv6 address's /64 - one host may
    pick any address of its network, so per address it would get a new bucket per request - an IPv4 address
    (or an IPv4-mapped IPv6 one) itself; anything else (a test client's name) unchanged."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter:
    """A token bucket per client address: ``take(client)`` spends one token and returns 0.0, or - when the
    bucket is empty - the seconds until a token is back. Buckets refill at ``rate`` per second up to
    ``burst``; at most ``max_clients`` are kept (least recently seen dropped first), so memory is bounded
    whatever the number of clients. Event-loop only (not thread-safe)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait


class RateLimit:
    """``GATEWAY_RATE_LIMIT_PER_SECOND`` per client address: the TCP peer, or the ``X-Forwarded-For``
    address only when the peer is one of ``GATEWAY_TRUSTED_PROXIES`` (uvicorn resolves it into the scope).
    Over the limit: 429 with ``Retry-After`` and the usual error body. Probes and metrics are never
    limited."""

    UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp, rate: float, burst: int) -> None:
        self.app = app
        self.limiter = RateLimiter(rate, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.UNLIMITED:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.limiter.take(client_of(str(client)))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        message = (
            f"too many requests: at most {self.limiter.rate:g} per second (bursts of {self.limiter.burst}) "
            f"per client; retry in {retry} s"
        )
        body = json.dumps(error_body("rate_limited", message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
