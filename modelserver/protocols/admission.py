"""Admission of gRPC calls: a call holds a working slot only once its request message has arrived.

grpc.aio's own ``maximum_concurrent_rpcs`` counts a call from its HEADERS frame, and a unary handler waits
for the request message with no bound. A client that opens streams and never sends their message
therefore held the server's slots: ~12,000 message-less streams over 120 connections reached the
2,000-call cap and every neighbour's new call was RESOURCE_EXHAUSTED while they were held (issue 25).

``CallAdmission`` is a server interceptor that serves every unary-request method (TF Serving's, the OIP's,
health) as a request-streaming one, so that it reads the message itself:

- **Waiting for the message** (at most ``message_timeout_s``): past it the call ends DEADLINE_EXCEEDED.
  At most ``max_waiting`` calls wait at once; one more ends the *oldest* waiting call (RESOURCE_EXHAUSTED),
  never the new one: a well-behaved client's message follows its HEADERS at once, so a flood of idle
  streams evicts itself, not the neighbours.
- **Working** (the message arrived): at most ``max_calls`` at once (``--grpc_max_threads``); past it the
  call is refused RESOURCE_EXHAUSTED, as grpc.aio's cap did.

- **Streaming replies** (health ``Watch``: long-lived by design): at most ``max_streams`` at once, counted
  once their message arrived; one more is refused RESOURCE_EXHAUSTED, so a Watch flood cannot fill
  grpc.aio's cap and take the slots of unary calls.

grpc.aio's own cap stays above all three (``outer_cap``) as the bound of everything a connection flood can
make the server hold. One event loop: no locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from guard.logs import RateLimitedLog
from guard.trim import trim_soon

__all__ = ["MAX_STREAMS", "CallAdmission", "admit", "outer_cap"]

# Streaming-reply calls (health Watch) held at once per server; a Watch is one per client and service.
MAX_STREAMS = 100

log = RateLimitedLog(logging.getLogger("modelserver.grpc"), rate=0.1, burst=3)

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def outer_cap(max_calls: int, max_waiting: int, max_streams: int = MAX_STREAMS) -> int:
    """grpc.aio's ``maximum_concurrent_rpcs`` with admission on: working, streaming and waiting calls, and
    room for evicted calls that are still finishing."""
    return max_calls + max_streams + 2 * max_waiting


def admit(max_calls: int, max_waiting: int, message_timeout_s: float) -> tuple[CallAdmission | None, int]:
    """The interceptor and grpc.aio's ``maximum_concurrent_rpcs`` for a server; no interceptor when the
    message timeout is 0 (off: grpc.aio's cap, which counts a call from its HEADERS)."""
    if message_timeout_s <= 0:
        return None, max_calls
    return CallAdmission(max_calls, max_waiting, message_timeout_s), outer_cap(max_calls, max_waiting)


class CallAdmission(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Contract: install once per ``grpc.aio.Server`` (``interceptors=[...]``) with grpc.aio's
    ``maximum_concurrent_rpcs`` set to ``outer_cap``; runs on the server's event loop only. Counters
    (``timed_out``, ``evicted``, ``refused``, ``streams_refused``) are for tests and the log."""

    def __init__(
        self, max_calls: int, max_waiting: int, message_timeout_s: float, max_streams: int = MAX_STREAMS
    ) -> None:
        self.max_calls, self.max_waiting, self.message_timeout_s = max_calls, max_waiting, message_timeout_s
        self.max_streams = max_streams
        self.working = self.streaming = 0
        self.timed_out = self.evicted = self.refused = self.streams_refused = 0
        # call -> its message deadline, oldest first; an evicted call's deadline is moved to now
        self._waiting: OrderedDict[object, asyncio.Timeout] = OrderedDict()
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = self._handlers.get(details.method)
        if handler is None:
            handler = self._wrap(await continuation(details))
            if handler is not None:
                self._handlers[details.method] = handler
        return handler

    def _wrap(self, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        if handler is None or handler.request_streaming:
            return handler
        if handler.response_streaming:  # health Watch: the message deadline and ``max_streams``
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_unary_rpc_method_handler(
            self._unary(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(self, behaviour: Behaviour) -> Callable[[object, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def call(_: object, context: grpc.aio.ServicerContext) -> Any:
            request = await self.receive(context)
            if self.working >= self.max_calls:
                self.refused += 1
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the server is serving its limit of {self.max_calls} calls at once; retry later",
                )
            self.working += 1
            try:
                return await behaviour(request, context)
            finally:
                self.working -= 1

        return call

    def _streaming(self, behaviour: Callable[..., Any]) -> Callable[[object, grpc.aio.ServicerContext], Any]:
        async def call(_: object, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request = await self.receive(context)
            if self.streaming >= self.max_streams:
                self.streams_refused += 1
                log.warning(
                    "refused streaming gRPC calls (%d open at once): %d since start",
                    self.max_streams,
                    self.streams_refused,
                )
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the server holds its limit of {self.max_streams} streaming calls (Watch) at once; "
                    "retry later",
                )
            self.streaming += 1
            try:
                result = behaviour(request, context)
                if hasattr(result, "__aiter__"):
                    async for reply in result:
                        yield reply
                else:
                    await result  # writes through context.write
            finally:
                self.streaming -= 1

        return call

    async def receive(self, context: grpc.aio.ServicerContext) -> object:
        """The call's one request message, within ``message_timeout_s``; ends the call otherwise."""
        key = object()
        try:
            async with asyncio.timeout(self.message_timeout_s) as deadline:
                self._waiting[key] = deadline
                if len(self._waiting) > self.max_waiting:
                    self._evict_oldest()
                request = await context.read()
        except TimeoutError:
            evicted = self._waiting.pop(key, None) is None
            self.evicted += evicted
            self.timed_out += not evicted
            trim_soon()  # a flood's calls are gone: give their memory back (debounced)
            log.warning(
                "ended gRPC calls whose request message did not arrive: %d after %.0f s, %d evicted "
                "(more than %d waiting); counts since start",
                self.timed_out,
                self.message_timeout_s,
                self.evicted,
                self.max_waiting,
            )
            if evicted:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"more than {self.max_waiting} calls were waiting for their request message; this was "
                    "the oldest",
                )
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request message did not arrive within {self.message_timeout_s:g} s of the call's start",
            )
        finally:
            self._waiting.pop(key, None)
        if request is grpc.aio.EOF:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call ended without a request message")
        return request

    def _evict_oldest(self) -> None:
        _, deadline = self._waiting.popitem(last=False)
        deadline.reschedule(asyncio.get_running_loop().time())
