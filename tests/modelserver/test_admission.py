"""modelserver.protocols.admission on a real grpc.aio server with a trivial echo method: a call waits for
its request message at most the timeout, one call too many waiting ends the oldest, a call with no message
is INVALID_ARGUMENT, and only calls whose message arrived count against the working cap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from modelserver.protocols.admission import CallAdmission, outer_cap

METHOD = "/test.Echo/Echo"
HANG_GUARD = 60.0


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(HANG_GUARD):  # a hang guard, never the pass condition
        while not condition():  # noqa: ASYNC110 - a condition on the admission's counters
            await asyncio.sleep(0.01)


async def _serve(
    admission: CallAdmission, behaviour: Callable[[bytes, Any], Awaitable[bytes]]
) -> tuple[grpc.aio.Server, str]:
    handler = grpc.unary_unary_rpc_method_handler(behaviour)
    server = grpc.aio.server(
        interceptors=[admission],
        maximum_concurrent_rpcs=outer_cap(admission.max_calls, admission.max_waiting),
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Echo": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _echo(request: bytes, context: Any) -> bytes:
    return request


@asynccontextmanager
async def served(
    max_calls: int = 10,
    max_waiting: int = 100,
    message_timeout: float = 30.0,
    behaviour: Callable[[bytes, Any], Awaitable[bytes]] = _echo,
) -> AsyncIterator[tuple[CallAdmission, grpc.aio.Channel]]:
    admission = CallAdmission(max_calls, max_waiting, message_timeout)
    server, target = await _serve(admission, behaviour)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            yield admission, channel
    finally:
        await server.stop(None)


def _waiting_call(channel: grpc.aio.Channel) -> Any:
    """A call that sends HEADERS and never its message (the client streams; on the wire it is a unary call)."""
    return channel.stream_unary(METHOD)()


async def _code(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_a_call_whose_message_never_arrives_ends_deadline_exceeded() -> None:
    async def scenario() -> None:
        async with served(message_timeout=0.5) as (admission, channel):
            assert await _code(_waiting_call(channel)) == grpc.StatusCode.DEADLINE_EXCEEDED
            assert admission.timed_out == 1 and await channel.unary_unary(METHOD)(b"hi") == b"hi"

    asyncio.run(scenario())


def test_one_call_too_many_waiting_ends_the_oldest_not_the_new_one() -> None:
    async def scenario() -> None:
        async with served(max_waiting=3) as (admission, channel):
            calls = []
            for expected in range(1, 6):
                calls.append(_waiting_call(channel))
                await _until(lambda n=expected: admission.evicted + len(admission._waiting) == n)
            codes = [await _code(call) for call in calls[:2]]
            assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2 and admission.evicted == 2
            # the neighbour's call evicts one more waiting call, and is served
            assert await channel.unary_unary(METHOD)(b"neighbour") == b"neighbour"
            assert admission.evicted == 3
            for call in calls[2:]:
                call.cancel()

    asyncio.run(scenario())


def test_a_call_that_ends_without_a_message_is_invalid_argument() -> None:
    async def scenario() -> None:
        async with served() as (_, channel):
            call = _waiting_call(channel)
            await call.done_writing()
            assert await _code(call) == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())


def test_only_calls_with_their_message_count_against_the_working_cap() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def held(request: bytes, context: Any) -> bytes:
            await release.wait()
            return request

        async with served(max_calls=2, behaviour=held) as (admission, channel):
            idle = [_waiting_call(channel) for _ in range(5)]  # more than the cap, without their message
            working = [asyncio.ensure_future(channel.unary_unary(METHOD)(b"w")) for _ in range(2)]
            await _until(lambda: admission.working == 2)
            refused = await _code(channel.unary_unary(METHOD)(b"third"))
            release.set()
            assert refused == grpc.StatusCode.RESOURCE_EXHAUSTED and admission.refused == 1
            assert await asyncio.gather(*working) == [b"w", b"w"]
            for call in idle:
                call.cancel()

    asyncio.run(scenario())


def test_streaming_calls_past_their_cap_are_refused_while_unary_calls_are_served() -> None:
    async def scenario() -> None:
        async def watch(request: bytes, context: Any) -> AsyncIterator[bytes]:
            yield request
            await asyncio.Event().wait()  # long-lived, as health Watch

        admission = CallAdmission(10, 100, 30.0, max_streams=2)
        server = grpc.aio.server(
            interceptors=[admission], maximum_concurrent_rpcs=outer_cap(10, 100, admission.max_streams)
        )
        handlers = {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Watch": grpc.unary_stream_rpc_method_handler(watch),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                opened = [channel.unary_stream("/test.Echo/Watch")(b"w") for _ in range(2)]
                assert [await call.read() for call in opened] == [b"w", b"w"]
                third = channel.unary_stream("/test.Echo/Watch")(b"w")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await third.read()
                assert await third.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert admission.streams_refused == 1 and admission.streaming == 2
                assert await channel.unary_unary(METHOD)(b"neighbour") == b"neighbour"
                opened[0].cancel()
                await _until(lambda: admission.streaming == 1)
                again = channel.unary_stream("/test.Echo/Watch")(b"again")
                assert await again.read() == b"again"
                for call in (opened[1], again):
                    call.cancel()
        finally:
            await server.stop(None)

    asyncio.run(scenario())
