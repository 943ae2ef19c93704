"""Resource exhaustion of the model server (issue 25, its model-server classes): descriptors, connections,
HTTP/2 abuse, dripped bodies, and small requests that ask for large memory (string tensors, tf.Example).

Every class runs while two well-behaved neighbours call: one through the gateway (housing regress) and one
on its own gRPC connection to the model server (text predict). Each records, with its bound:

- the reply class (4xx, INVALID_ARGUMENT, RST_STREAM / connection closed, 408);
- the model server's anonymous RSS (RssAnon: what a request can make it hold) at its peak during the
  attack and what is kept afterwards - both under ``RSS_BOUND_BYTES``;
- the neighbours' errors (0) and worst latency;
- the log lines both servers wrote meanwhile (at most ``LOG_LINES_BOUND``) and tracebacks (0).

Descriptor exhaustion runs last: the model server's open-file limit is lowered (``prlimit``) to a little above
what it holds and idle connections take the rest, so its version scans fail with EMFILE; no version may be
unloaded, the failure is logged once, and everything is restored afterwards.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import httpx

from reliability.attack import HOUSING, Neighbour, _grown, _log_lines, _raw_http, peak_rss
from reliability.http2 import idle_streams, rapid_reset
from reliability.outcome import Outcome
from reliability.payloads import HOUSING_RECORD
from reliability.probes import usage
from reliability.stack import Stack, StackOptions, wait_until
from tfs_protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

__all__ = ["BODY_DEADLINE", "LOG_LINES_BOUND", "RSS_BOUND_BYTES", "exhaustion_options", "run"]

RSS_BOUND_BYTES = 100 * 1024 * 1024
LOG_LINES_BOUND = 20
BODY_DEADLINE = 4.0
TINY_STRINGS = 1_500_000
_MIB = 1024 * 1024
_TRACEBACK = "Traceback (most recent call last)"


def exhaustion_options(base: StackOptions | None = None) -> StackOptions:
    """The stack settings this scenario needs, added to ``base``: a short total body deadline."""
    base = base or StackOptions()
    return StackOptions(
        gateway_env=dict(base.gateway_env),
        modelserver_flags=(*base.modelserver_flags, f"--rest_api_body_deadline_seconds={BODY_DEADLINE}"),
        modelserver_user=base.modelserver_user,
    )


class GrpcNeighbour:
    """Text predict every 50 ms on its own gRPC connection to the model server; errors counted by code."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = "text"
        self.request.inputs["text"].CopyFrom(_strings([b"see you at 6"], [1]))
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            started = time.perf_counter()
            try:
                self.stub.Predict(self.request, timeout=30)
            except grpc.RpcError as exc:
                self.errors.append(exc.code().name)  # type: ignore[attr-defined]
            self.latencies.append(time.perf_counter() - started)

    def __enter__(self) -> GrpcNeighbour:
        self.stub.Predict(self.request, timeout=60)  # connected before the attack
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.channel.close()


def _strings(values: list[bytes], dims: list[int]) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=values)


def _grpc(stack: Stack, method: str, request: Any) -> str:
    options = [("grpc.max_send_message_length", 2**31 - 1)]
    with grpc.insecure_channel(stack.grpc_target, options=options, compression=grpc.Compression.Gzip) as ch:
        try:
            getattr(prediction_service_pb2_grpc.PredictionServiceStub(ch), method)(request, timeout=120)
        except grpc.RpcError as exc:
            return exc.code().name  # type: ignore[attr-defined, no-any-return]
    return "OK"


def _gzip_post(url: str, document: Any) -> tuple[int, int]:
    body = gzip.compress(json.dumps(document).encode(), 6)
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    return httpx.post(url, content=body, headers=headers, timeout=120).status_code, len(body)


@contextmanager
def _measured(stack: Stack, outcome: Outcome, name: str, figures: dict[str, Any]) -> Iterator[None]:
    """Run one class between neighbours; record peak and kept RssAnon, neighbour errors, log volume."""
    pid = stack.pids()["modelserver"]
    before = {n: len(lines) for n, lines in _log_lines(stack).items()}
    gateway = Neighbour(f"{stack.gateway_url}{HOUSING}", {"records": [HOUSING_RECORD]})
    with gateway, GrpcNeighbour(stack.grpc_target) as direct, peak_rss(pid) as found:
        started = found["start"]
        yield
    time.sleep(2.0)  # what is kept once the refused requests are gone (recorded, never a pass condition)
    kept = usage(pid).anon_bytes - started
    new = {n: lines[before.get(n, 0) :] for n, lines in _log_lines(stack).items()}
    lines = sum(len(v) for v in new.values())
    tracebacks = sum(_TRACEBACK in line for v in new.values() for line in v)
    errors = gateway.failures + len(direct.errors)
    worst = max([*gateway.latencies, *direct.latencies], default=0.0)
    figures[name] = {
        **figures.get(name, {}),
        "rss_anon_peak_mib": round(_grown(found) / _MIB, 1),
        "rss_anon_kept_mib": round(kept / _MIB, 1),
        "neighbour_requests": len(gateway.latencies) + len(direct.latencies),
        "neighbour_errors": errors,
        "neighbour_error_codes": sorted(set(direct.errors)),
        "neighbour_worst_ms": round(worst * 1000, 1),
        "log_lines": lines,
        "tracebacks": tracebacks,
    }
    outcome.check(_grown(found) < RSS_BOUND_BYTES, f"{name}: RssAnon +{_grown(found) / _MIB:.0f} MiB at peak")
    outcome.check(kept < RSS_BOUND_BYTES, f"{name}: RssAnon +{kept / _MIB:.0f} MiB kept afterwards")
    outcome.check(errors == 0, f"{name}: {errors} neighbour errors ({sorted(set(direct.errors))})")
    outcome.check(tracebacks == 0, f"{name}: {tracebacks} tracebacks in the logs")
    outcome.check(lines <= LOG_LINES_BOUND, f"{name}: {lines} log lines")


# ------------------------------------------------------------------------------------------ the classes


def connection_flood(stack: Stack, outcome: Outcome, connections: int) -> dict[str, Any]:
    """``connections`` idle TCP connections to each of the model server's ports: past the per-port cap a
    gRPC connection is closed once accepted and REST answers 503, so its descriptors stay bounded."""
    figures: dict[str, Any] = {}
    pid = stack.pids()["modelserver"]
    fds_before = usage(pid).fds
    peak_fds = settled = fds_before
    with _measured(stack, outcome, "connection_flood", figures):
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


def http2_rapid_reset(stack: Stack, outcome: Outcome, streams: int) -> dict[str, Any]:
    """HEADERS + RST_STREAM in a tight loop on one connection (CVE-2023-44487)."""
    figures: dict[str, Any] = {}
    server = stack.modelserver
    cpu = server.cpu_seconds() if server else 0.0
    with _measured(stack, outcome, "http2_rapid_reset", figures):
        report = rapid_reset("127.0.0.1", stack.grpc_port, streams)
    figures["http2_rapid_reset"].update(
        {
            "streams_sent": report.sent,
            "goaway": report.goaway,
            "closed": report.closed,
            "server_cpu_s": round((server.cpu_seconds() if server else 0.0) - cpu, 2),
        }
    )
    return figures


def http2_idle_streams(stack: Stack, outcome: Outcome, connections: int, streams: int) -> dict[str, Any]:
    """Message-less Predict streams, ``streams`` per connection on ``connections`` connections, held open:
    past MAX_CONCURRENT_STREAMS each is refused (RST_STREAM)."""
    figures: dict[str, Any] = {}
    with _measured(stack, outcome, "http2_idle_streams", figures):
        report = idle_streams("127.0.0.1", stack.grpc_port, streams, connections)
        report.close()
    figures["http2_idle_streams"].update(
        {"streams_sent": report.sent, "streams_refused": report.refused, "goaway": report.goaway}
    )
    outcome.check(
        report.refused >= report.sent - connections * 100,
        f"idle streams: {report.refused} of {report.sent} refused (100 allowed per connection)",
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
    with _measured(stack, outcome, "dripped_body", figures):
        status, _, seconds = _raw_http(stack.rest_url, head, drip(), read_timeout=BODY_DEADLINE * 10)
    figures["dripped_body"].update({"status": status, "closed_after_s": round(seconds, 1)})
    outcome.check(
        status == 408, f"dripped body: status {status} after {seconds:.1f} s (deadline {BODY_DEADLINE})"
    )
    return figures


def string_tensors(stack: Stack, outcome: Outcome, count: int) -> dict[str, Any]:
    """``count`` one-byte strings, gzip-compressed: gRPC Predict ([1, count]), REST predict (JSON strings
    and b64 objects) and OIP infer. Each is refused before its strings are decoded."""
    figures: dict[str, Any] = {}
    cases: list[tuple[str, Callable[[], tuple[str, int]]]] = [
        (
            "grpc_predict",
            lambda: (_grpc(stack, "Predict", _predict_strings(count)), 0),
        ),
        (
            "rest_json",
            lambda: _reply(
                _gzip_post(f"{stack.rest_url}/v1/models/text:predict", {"instances": ["a"] * count})
            ),
        ),
        (
            "rest_b64",
            lambda: _reply(
                _gzip_post(
                    f"{stack.rest_url}/v1/models/text:predict", {"instances": [{"b64": "YQ=="}] * count}
                )
            ),
        ),
        (
            "oip_infer",
            lambda: _reply(
                _gzip_post(
                    f"{stack.rest_url}/v2/models/text/infer",
                    {
                        "inputs": [
                            {"name": "text", "shape": [count], "datatype": "BYTES", "data": ["a"] * count}
                        ]
                    },
                )
            ),
        ),
    ]
    for case, send in cases:
        name = f"strings_{case}"
        with _measured(stack, outcome, name, figures):
            reply, size = send()
        figures[name].update({"reply": reply, "compressed_bytes": size or None})
        outcome.check(reply in ("INVALID_ARGUMENT", "400"), f"{name}: answered {reply}")
    return figures


def _predict_strings(count: int) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "text"
    request.inputs["text"].CopyFrom(_strings([b"a"] * count, [1, count]))
    return request


def _reply(result: tuple[int, int]) -> tuple[str, int]:
    return str(result[0]), result[1]


def examples(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """Classify with 250,000 empty examples (gRPC and REST) and with a 1 MiB context and 200 examples
    (TF Serving merges the context into every example): refused from their count and bytes."""
    figures: dict[str, Any] = {}

    def many() -> classification_pb2.ClassificationRequest:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "text"
        request.model_spec.signature_name = "classify"
        for _ in range(250_000):
            request.input.example_list.examples.add()
        return request

    def context() -> classification_pb2.ClassificationRequest:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "text"
        request.model_spec.signature_name = "classify"
        with_context = request.input.example_list_with_context
        with_context.context.features.feature["pad"].bytes_list.value.append(b"x" * _MIB)
        for _ in range(200):
            with_context.examples.add()
        return request

    cases: list[tuple[str, Callable[[], tuple[str, int]]]] = [
        ("grpc_250k_empty", lambda: (_grpc(stack, "Classify", many()), 0)),
        ("grpc_1mib_context_x200", lambda: (_grpc(stack, "Classify", context()), 0)),
        (
            "rest_250k_empty",
            lambda: _reply(
                _gzip_post(
                    f"{stack.rest_url}/v1/models/text:classify",
                    {"signature_name": "classify", "examples": [{}] * 250_000},
                )
            ),
        ),
    ]
    for case, send in cases:
        name = f"examples_{case}"
        with _measured(stack, outcome, name, figures):
            reply, size = send()
        figures[name].update({"reply": reply, "compressed_bytes": size or None})
        outcome.check(reply in ("INVALID_ARGUMENT", "400"), f"{name}: answered {reply}")
    return figures


def descriptor_exhaustion(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """The model server at its open-file limit (lowered to what it holds + 48, then idle connections):
    its version scans fail with EMFILE; no version is unloaded, the failure is logged once, and the
    neighbours on their existing connections are served throughout."""
    figures: dict[str, Any] = {}
    pid = stack.pids()["modelserver"]
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    served_before = _available(stack)
    before = _log_text(stack)
    flood: list[socket.socket] = []
    with _measured(stack, outcome, "descriptor_exhaustion", figures):
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
            served_during = _available(stack)
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


def _available(stack: Stack) -> dict[str, list[int]]:
    """{model: AVAILABLE versions}, on one channel opened before and reused (no new descriptor needed)."""
    global _status_channel
    if _status_channel is None:
        _status_channel = grpc.insecure_channel(stack.grpc_target)
    stub = model_service_pb2_grpc.ModelServiceStub(_status_channel)
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


_status_channel: grpc.Channel | None = None


def _log_text(stack: Stack) -> str:
    server = stack.modelserver
    return server.log_path.read_text(encoding="utf-8", errors="replace") if server else ""


def run(stack: Stack, *, quick: bool = False) -> Outcome:
    global _status_channel
    outcome = Outcome("exhaustion", "Resource exhaustion (issue 25)")
    figures: dict[str, Any] = {}
    _available(stack)  # the status channel connects while descriptors are plentiful
    steps: list[Callable[[], dict[str, Any]]] = [
        lambda: string_tensors(stack, outcome, TINY_STRINGS),
        lambda: examples(stack, outcome),
        lambda: http2_rapid_reset(stack, outcome, 2_000 if quick else 20_000),
        lambda: http2_idle_streams(stack, outcome, 2 if quick else 10, 1_000),
        lambda: dripped_body(stack, outcome),
        lambda: connection_flood(stack, outcome, 300 if quick else 3_000),
        lambda: descriptor_exhaustion(stack, outcome),  # last: it takes the server to its open-file limit
    ]
    try:
        for step in steps:
            figures.update(step())
    finally:
        if _status_channel is not None:
            _status_channel.close()
            _status_channel = None
    outcome.check(bool(stack.modelserver and stack.modelserver.alive()), "the model server died")
    outcome.figures = figures
    return outcome.finish()
