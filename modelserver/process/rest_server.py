"""The REST port of one serving process: TF Serving's REST API with the Open Inference Protocol's ``/v2``
beside it, under uvicorn on the server's event loop (uvicorn's signal handling left to the server), with the
HTTP limits of ``guard.http`` and, as one of several workers, a ``SO_REUSEPORT`` socket of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio.to_thread
import uvicorn

from guard.http import HttpLimits, protocol_class
from modelserver.dataplane import PROTOCOL
from modelserver.errors import ConfigError
from modelserver.process.options import ServerOptions
from modelserver.protocols.oip.rest import OipRestApi, is_oip_path
from modelserver.protocols.oip.service import OipDataPlane
from modelserver.protocols.tfs.json.text import error_json
from modelserver.runtime.limits import DEADLINE

__all__ = ["ASGIApp", "Uvicorn", "start_rest", "with_oip_rest"]

log = logging.getLogger("modelserver")

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Uvicorn(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers: the model server owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _rest_protocol(app: ASGIApp, timeout_ms: int = 0) -> ASGIApp:
    """Label the REST adapter's calls as protocol "rest" in the data plane's metrics, and give each call the
    deadline ``--rest_api_timeout_in_ms`` (TF Serving runs REST calls with it as their timeout)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        PROTOCOL.set("rest")
        if timeout_ms > 0 and scope.get("type") == "http":
            DEADLINE.set(time.monotonic() + timeout_ms / 1000)
        await app(scope, receive, send)

    return wrapped


async def start_rest(
    o: ServerOptions,
    app: ASGIApp,
    oip: OipDataPlane,
    *,
    shared_port: bool,
    grace_seconds: float,
    max_connections: int = 0,
) -> tuple[Uvicorn, asyncio.Task[Any]]:
    """Serve ``app`` (TF Serving's REST app) and the OIP's REST API on ``--rest_api_port``; returns once the port
    is open (ConfigError when it cannot be). ``max_connections``: past it a new connection gets 503 (0: none)."""
    if o.rest_api_num_threads:  # the threads that parse and write large bodies (protocols.http.offload)
        anyio.to_thread.current_default_thread_limiter().total_tokens = o.rest_api_num_threads
    limits = HttpLimits(
        max_header_bytes=o.rest_api_max_header_bytes,
        header_timeout=o.rest_api_header_timeout_seconds,
        body_timeout=o.rest_api_body_timeout_seconds,
        body_deadline=o.rest_api_body_deadline_seconds,
        max_connections=max_connections,
    )
    config = uvicorn.Config(
        with_oip_rest(_rest_protocol(app, o.rest_api_timeout_in_ms), oip, o.rest_api_max_body_bytes),
        host=o.bind_host,
        port=o.rest_api_port,
        http=protocol_class(limits, _rest_error, "application/json"),
        lifespan="off",
        log_level="warning",
        access_log=False,
        # TF Serving's REST server reads no X-Forwarded-* header: the TCP peer is the client (uvicorn would
        # otherwise trust them from 127.0.0.1).
        proxy_headers=False,
        timeout_graceful_shutdown=int(grace_seconds),
    )
    server = Uvicorn(config)
    sockets = [_shared_socket(o.bind_host, o.rest_api_port)] if shared_port else None
    task = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started:
        if task.done():
            task.result()
            raise ConfigError(f"cannot listen on REST port {o.rest_api_port}")
        await asyncio.sleep(0.02)
    log.info("Exporting HTTP/REST API at:%s:%d ...", o.bind_host, o.rest_api_port)
    return server, task


def _shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT: every worker binds its own and the kernel spreads new
    connections across them (uvicorn has no option for it)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise ConfigError(f"cannot listen on REST port {port}: {exc}") from None
    sock.setblocking(False)
    return sock


def _rest_error(code: str, message: str) -> bytes:
    del code
    return error_json(message)


def with_oip_rest(app: ASGIApp, oip: OipDataPlane, max_body_bytes: int) -> ASGIApp:
    """TF Serving's REST API with the Open Inference Protocol's ``/v2`` paths mounted beside it."""
    oip_app = OipRestApi(oip, max_body_bytes, oip.limits)

    async def routed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_oip_path(scope.get("path", "")):
            await oip_app(scope, receive, send)
        else:
            await app(scope, receive, send)

    return routed
