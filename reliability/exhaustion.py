"""Resource exhaustion of the model server (issue 25, its model-server classes): descriptors, connections,
HTTP/2 abuse, dripped bodies, and small requests that ask for large memory (``reliability.amplification``).

The idle-stream flood runs in two forms: many streams on few connections (refused past 64 per connection)
and 100 streams on each of many connections, more than the server's 2,000-call cap in all (past 64 per
connection refused; the calls' admission, ``modelserver.protocols.admission``, ends the rest and keeps the
neighbours served). Health ``Watch`` streams past the server's cap on streaming calls are refused.

Every class runs between two well-behaved neighbours and records its reply class, the model server's RssAnon
at peak and kept afterwards, the neighbours' errors and the log volume, each against its bound
(``reliability.measured``).

Descriptor exhaustion runs last: the model server's open-file limit is lowered (``prlimit``) to a little above
what it holds and idle connections take the rest, so its version scans fail with EMFILE; no version may be
unloaded, the failure is logged once, and everything is restored afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from reliability.amplification import TINY_STRINGS, examples, string_tensors
from reliability.harness import raw_http
from reliability.http2 import idle_stream_refill, idle_streams, ping_flood, rapid_reset
from reliability.measured import measured
from reliability.outcome import Outcome
from reliability.probes import usage
from reliability.stack import Stack, StackOptions, wait_until
from tfs_protos.tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

__all__ = [
    "BODY_DEADLINE",
    "connection_flood",
    "descriptor_exhaustion",
    "dripped_body",
    "exhaustion_options",
    "health_watch_flood",
    "http2_idle_stream_flood",
    "http2_idle_stream_refill",
    "http2_idle_streams",
    "http2_ping_flood",
    "http2_rapid_reset",
    "run",
]

BODY_DEADLINE = 4.0
# the model server's default --grpc_request_message_timeout_seconds (modelserver.protocols.admission)
MESSAGE_TIMEOUT = 5.0
WATCH = "/grpc.health.v1.Health/Watch"
STREAMS_PER_CONNECTION = 64  # the model server's MAX_CONCURRENT_STREAMS (protocols.tfs.grpc_service)
MAX_WATCHES = 100  # modelserver.protocols.admission.MAX_STREAMS (the attack suite imports no server code)


def exhaustion_options(base: StackOptions | None = None) -> StackOptions:
    """The stack settings this scenario needs, added to ``base``: a short total body deadline and the health
    service (for the Watch flood)."""
    base = base or StackOptions()
    return StackOptions(
        gateway_env=dict(base.gateway_env),
        modelserver_flags=(
            *base.modelserver_flags,
            f"--rest_api_body_deadline_seconds={BODY_DEADLINE}",
            "--enable_grpc_healthcheck_service",
        ),
        modelserver_user=base.modelserver_user,
    )


def connection_flood(stack: Stack, outcome: Outcome, connections: int) -> dict[str, Any]:
    """``connections`` idle TCP connections to each of the model server's ports: past the per-port cap a
    gRPC connection is closed once accepted and REST answers 503, so its descriptors stay bounded."""
    figures: dict[str, Any] = {}
    pid = stack.pids()["modelserver"]
    fds_before = usage(pid).fds
    peak_fds = settled = fds_before
    with measured(stack, outcome, "connection_flood", figures):
        held: list[socket.socket] = []
        try:
            for port in (stack.grpc_port, stack.rest_port):
                for _ in range(connections):
                    with contextlib.suppress(OSError):
                        held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                    if len(held) % 200 == 0:
                        peak_fds = max(peak_fds, usage(pid).fds)
            time.sleep(2.0)  # let the server accept what it will, and close what is over its cap
            settled = usage(pid).fds
            peak_fds = max(peak_fds, settled)
        finally:
            for sock in held:
                sock.close()
    figures["connection_flood"].update(
        {
            "connections_per_port": connections,
            "server_fds_before": fds_before,
            "server_fds_peak": peak_fds,  # sampled while connecting: includes those being closed over the cap
            "server_fds_held": settled,
        }
    )
    outcome.check(
        settled - fds_before <= 2 * 1000 + 64,
        f"connection flood: the server holds {settled - fds_before} more descriptors (cap 1000 per port)",
    )
    return figures


def _server_cpu(stack: Stack) -> float:
    """CPU seconds the model server has used so far (0 when it is not running)."""
    return stack.modelserver.cpu_seconds() if stack.modelserver else 0.0


def http2_rapid_reset(stack: Stack, outcome: Outcome, streams: int) -> dict[str, Any]:
    """HEADERS + RST_STREAM in a tight loop on one connection (CVE-2023-44487)."""
    figures: dict[str, Any] = {}
    cpu = _server_cpu(stack)
    with measured(stack, outcome, "http2_rapid_reset", figures):
        report = rapid_reset("127.0.0.1", stack.grpc_port, streams)
    figures["http2_rapid_reset"].update(
        {
            "streams_sent": report.sent,
            "goaway": report.goaway,
            "closed": report.closed,
            "server_cpu_s": round(_server_cpu(stack) - cpu, 2),
        }
    )
    return figures


def http2_ping_flood(stack: Stack, outcome: Outcome, pings: int) -> dict[str, Any]:
    """PING frames in a loop with no call on the connection: GOAWAY (ENHANCE_YOUR_CALM) from grpc-core's
    ping strikes."""
    figures: dict[str, Any] = {}
    with measured(stack, outcome, "http2_ping_flood", figures):
        report = ping_flood("127.0.0.1", stack.grpc_port, pings)
    figures["http2_ping_flood"].update({"pings_sent": report.sent, "goaway": report.goaway})
    outcome.check(bool(report.goaway), f"ping flood: {report.sent} pings and no GOAWAY")
    return figures


def http2_idle_streams(stack: Stack, outcome: Outcome, connections: int, streams: int) -> dict[str, Any]:
    """Message-less Predict streams, ``streams`` per connection on ``connections`` connections, held open:
    past MAX_CONCURRENT_STREAMS each is refused (RST_STREAM)."""
    figures: dict[str, Any] = {}
    with measured(stack, outcome, "http2_idle_streams", figures):
        report = idle_streams("127.0.0.1", stack.grpc_port, streams, connections)
        report.close()
    figures["http2_idle_streams"].update(
        {"streams_sent": report.sent, "streams_refused": report.refused, "goaway": report.goaway}
    )
    outcome.check(
        report.refused >= report.sent - connections * STREAMS_PER_CONNECTION,
        f"idle streams: {report.refused} of {report.sent} refused ({STREAMS_PER_CONNECTION} allowed per connection)",
    )
    return figures


def http2_idle_stream_flood(
    stack: Stack,
    outcome: Outcome,
    connections: int,
    streams: int = 100,
    message_timeout: float = MESSAGE_TIMEOUT,
) -> dict[str, Any]:
    """Message-less Predict streams spread over many connections (``streams`` each; past the per-connection
    limit refused), more than the server's call cap in all, held until the server ends them: the neighbours'
    calls must be served throughout, and every idle stream ended (DEADLINE_EXCEEDED after the request-message
    timeout, or RESOURCE_EXHAUSTED when evicted as the oldest of too many waiting)."""
    figures: dict[str, Any] = {}
    name = "http2_idle_stream_flood"
    with measured(stack, outcome, name, figures):
        started = time.monotonic()
        report = idle_streams(
            "127.0.0.1", stack.grpc_port, streams, connections, message_timeout + 60, until_ended=True
        )
        held_s = time.monotonic() - started
        report.close()
    ended = len(report.ended)
    figures[name].update(
        {
            "connections": connections,
            "streams_sent": report.sent,
            "streams_ended_or_reset": ended,
            "streams_on_closed_connections": report.dropped,  # past the server's connection budget
            "streams_ended": dict(sorted(report.statuses.items())),  # grpc-status: 4 deadline, 8 evicted
            "all_ended_after_s": round(held_s, 1),
        }
    )
    outcome.check(
        ended >= report.sent, f"idle stream flood: the server ended {ended} of {report.sent} streams"
    )
    return figures


def http2_idle_stream_refill(
    stack: Stack, outcome: Outcome, connections: int, seconds: float = 20.0
) -> dict[str, Any]:
    """The flood's attacker refilling what the server ends: ``connections`` connections keep
    STREAMS_PER_CONNECTION message-less streams open each for ``seconds``, replacing every stream the server
    evicts or times out at once. What it costs the server in CPU is recorded; the neighbours must be served
    throughout and the memory stay bounded."""
    figures: dict[str, Any] = {}
    name = "http2_idle_stream_refill"
    cpu = _server_cpu(stack)
    pid = stack.pids()["modelserver"]
    fds = usage(pid).fds
    with measured(stack, outcome, name, figures):
        report = idle_stream_refill(
            "127.0.0.1", stack.grpc_port, connections, STREAMS_PER_CONNECTION, seconds
        )
        report.close()
        used = _server_cpu(stack) - cpu
        # the backlog of streams it left is worked off before the next class takes connections
        closed = wait_until(lambda: usage(pid).fds <= fds + 8, 60, interval=0.2)
    figures[name].update(
        {
            "connections": connections,
            "seconds": seconds,
            "streams_opened": report.sent,
            "streams_ended": dict(sorted(report.statuses.items())),  # grpc-status: 4 deadline, 8 evicted
            "server_cpu_s": round(used, 2),
            "server_cores": round(used / seconds, 2),
        }
    )
    outcome.check(closed, "idle stream refill: the server still held the attacker's connections after 60 s")
    outcome.check(
        report.sent > connections * STREAMS_PER_CONNECTION,
        f"idle stream refill: the server ended none of the {report.sent} streams held (nothing to refill)",
    )
    return figures


async def _watches(target: str, count: int, connections: int) -> tuple[int, dict[str, int]]:
    """``count`` health Watch streams over ``connections`` channels, held until each has its first reply or
    its status; returns how many are open and the codes of those that ended, then closes them all."""
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(connections)
    ]
    calls = [channels[i % connections].unary_stream(WATCH)(b"") for i in range(count)]

    async def first(call: Any) -> str:
        try:
            await asyncio.wait_for(call.read(), 60)  # a hang guard
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        code = await call.code() if call.done() else None
        return code.name if code else "open"

    outcomes = await asyncio.gather(*(first(call) for call in calls))
    for call in calls:
        call.cancel()
    for channel in channels:
        await channel.close()
    ended: dict[str, int] = {}
    for name in outcomes:
        ended[name] = ended.get(name, 0) + 1
    return ended.pop("open", 0), ended


def health_watch_flood(stack: Stack, outcome: Outcome, count: int) -> dict[str, Any]:
    """Health ``Watch`` streams (long-lived by design) past the server's cap on streaming calls
    (``modelserver.protocols.admission.MAX_STREAMS``): the excess refused RESOURCE_EXHAUSTED, unary
    neighbours served throughout."""
    figures: dict[str, Any] = {}
    name = "health_watch_flood"
    with measured(stack, outcome, name, figures):
        held, ended = asyncio.run(_watches(stack.grpc_target, count, 10))
    figures[name].update({"watches_sent": count, "watches_open": held, "watches_ended": ended})
    # UNAVAILABLE: a call the client could not start on its connection (seen once in 4 runs), not held
    outcome.check(
        held <= MAX_WATCHES and set(ended) <= {"RESOURCE_EXHAUSTED", "UNAVAILABLE"},
        f"health Watch flood: {held} of {count} held, {ended} refused (at most {MAX_WATCHES} held)",
    )
    return figures


def dripped_body(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """A REST body announced at 100 KB, one byte every 0.5 s: it never stalls, so only the total deadline
    (``BODY_DEADLINE`` here) ends it with 408."""
    figures: dict[str, Any] = {}

    def drip() -> Iterator[bytes]:
        for _ in range(int(BODY_DEADLINE * 10)):  # hang guard: stops after 5 x the deadline
            time.sleep(0.5)
            yield b" "

    head = (
        b"POST /v1/models/text:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with measured(stack, outcome, "dripped_body", figures):
        status, _, seconds = raw_http(stack.rest_url, head, drip(), read_timeout=BODY_DEADLINE * 10)
    figures["dripped_body"].update({"status": status, "closed_after_s": round(seconds, 1)})
    outcome.check(
        status == 408, f"dripped body: status {status} after {seconds:.1f} s (deadline {BODY_DEADLINE})"
    )
    return figures


def descriptor_exhaustion(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """The model server at its open-file limit (lowered to what it holds + 48, then idle connections):
    its version scans fail with EMFILE; no version is unloaded, the failure is logged once, and the
    neighbours on their existing connections are served throughout."""
    figures: dict[str, Any] = {}
    pid = stack.pids()["modelserver"]
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    # status on one channel connected now and reused at the limit (no new descriptor needed there)
    status = grpc.insecure_channel(stack.grpc_target)
    served_before = _available(stack, status)
    before = _log_text(stack)
    flood: list[socket.socket] = []
    with status, measured(stack, outcome, "descriptor_exhaustion", figures):
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (usage(pid).fds + 48, hard))
        try:
            for _ in range(400):  # hang guard: the limit is reached long before
                with contextlib.suppress(OSError):
                    flood.append(socket.create_connection(("127.0.0.1", stack.grpc_port), timeout=10))
                if usage(pid).fds >= resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]:
                    break
            scanned = wait_until(lambda: "cannot scan" in _log_text(stack)[len(before) :], 30, interval=0.2)
            for _ in range(5):  # the REST port cannot accept either: one line, the waiting clients shed
                with contextlib.suppress(OSError):
                    flood.append(socket.create_connection(("127.0.0.1", stack.rest_port), timeout=10))
            wait_until(lambda: "accept() failed" in _log_text(stack)[len(before) :], 30, interval=0.2)
            served_during = _available(stack, status)
        finally:
            for sock in flood:
                sock.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        recovered = wait_until(lambda: "scanned again" in _log_text(stack)[len(before) :], 30, interval=0.2)
    log = _log_text(stack)[len(before) :]
    figures["descriptor_exhaustion"].update(
        {
            "connections_to_reach_the_limit": len(flood),
            "scan_failed": scanned,
            "scan_recovered": recovered,
            "scan_error_lines": log.count("cannot scan"),
            "accept_error_lines": log.count("accept() failed"),
            "accept_tracebacks": log.count("out of system resource"),
            "versions_unloaded": log.count(": unloaded"),
            "available_before": served_before,
            "available_during": served_during,
        }
    )
    outcome.check(scanned, "descriptor exhaustion: no version scan failed (the limit was not reached)")
    outcome.check(
        served_during == served_before, f"descriptor exhaustion: {served_before} -> {served_during}"
    )
    outcome.check(log.count(": unloaded") == 0, "descriptor exhaustion: a version was unloaded")
    outcome.check("out of system resource" not in log, "descriptor exhaustion: asyncio's accept traceback")
    return figures


def _available(stack: Stack, channel: grpc.Channel) -> dict[str, list[int]]:
    """{model: AVAILABLE versions}."""
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    served: dict[str, list[int]] = {}
    for model in stack.models:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        reply = stub.GetModelStatus(request, timeout=30)
        served[model] = sorted(
            s.version
            for s in reply.model_version_status
            if s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        )
    return served


def _log_text(stack: Stack) -> str:
    server = stack.modelserver
    return server.log_path.read_text(encoding="utf-8", errors="replace") if server else ""


def run(stack: Stack, *, quick: bool = False) -> Outcome:
    outcome = Outcome("exhaustion", "Resource exhaustion (issue 25)")
    figures: dict[str, Any] = {}
    steps: list[Callable[[], dict[str, Any]]] = [
        lambda: string_tensors(stack, outcome, TINY_STRINGS),
        lambda: examples(stack, outcome),
        lambda: http2_rapid_reset(stack, outcome, 2_000 if quick else 20_000),
        lambda: http2_idle_streams(stack, outcome, 2 if quick else 10, 1_000),
        # past the connection ceiling (64)
        lambda: http2_idle_stream_flood(stack, outcome, 30 if quick else 256),
        lambda: health_watch_flood(stack, outcome, 100 if quick else 1_000),
        lambda: http2_ping_flood(stack, outcome, 2_000),
        lambda: dripped_body(stack, outcome),
        lambda: connection_flood(stack, outcome, 300 if quick else 3_000),
        # late: the backlog it leaves slowed the health Watch flood past its hang guard
        lambda: http2_idle_stream_refill(stack, outcome, 8 if quick else 64, 5.0 if quick else 20.0),
        lambda: descriptor_exhaustion(stack, outcome),  # last: it takes the server to its open-file limit
    ]
    for step in steps:
        figures.update(step())
    outcome.check(bool(stack.modelserver and stack.modelserver.alive()), "the model server died")
    outcome.figures = figures
    return outcome.finish()
