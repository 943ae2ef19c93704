"""Measuring one class of an attack on the model server (issue 25): ``measured(stack, outcome, name, figures)``
runs it between two well-behaved neighbours - one through the gateway (housing regress), one on its own gRPC
connection to the model server (text predict, ``GrpcNeighbour``) - and records, against its bounds, the model
server's RssAnon at its peak and what is kept 2 s later (``RSS_BOUND_BYTES`` each), the neighbours' errors
(none) and worst latency, and the log lines both servers wrote (``LOG_LINES_BOUND``, no traceback). Also the
small request builders the classes share."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import httpx

from reliability.attack import HOUSING
from reliability.harness import Neighbour, growth, log_lines, peak_rss
from reliability.outcome import Outcome
from reliability.payloads import HOUSING_RECORD
from reliability.probes import usage
from reliability.stack import Stack
from tfs_protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tfs_protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

__all__ = [
    "LOG_LINES_BOUND",
    "MIB",
    "RSS_BOUND_BYTES",
    "GrpcNeighbour",
    "grpc_call",
    "gzip_post",
    "measured",
    "string_tensor",
]

RSS_BOUND_BYTES = 100 * 1024 * 1024
LOG_LINES_BOUND = 20
MIB = 1024 * 1024
_TRACEBACK = "Traceback (most recent call last)"


class GrpcNeighbour:
    """Text predict every 50 ms on its own gRPC connection to the model server; errors counted by code."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = "text"
        self.request.inputs["text"].CopyFrom(string_tensor([b"see you at 6"], [1]))
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.details: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            started = time.perf_counter()
            try:
                self.stub.Predict(self.request, timeout=30)
            except grpc.RpcError as exc:
                self.errors.append(exc.code().name)  # type: ignore[attr-defined]
                self.details.add(f"{exc.code().name}: {exc.details()}"[:200])  # type: ignore[attr-defined]
            self.latencies.append(time.perf_counter() - started)

    def __enter__(self) -> GrpcNeighbour:
        self.stub.Predict(self.request, timeout=60)  # connected before the attack
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.channel.close()


def string_tensor(values: list[bytes], dims: list[int]) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=values)


def grpc_call(stack: Stack, method: str, request: Any) -> str:
    options = [("grpc.max_send_message_length", 2**31 - 1)]
    with grpc.insecure_channel(stack.grpc_target, options=options, compression=grpc.Compression.Gzip) as ch:
        try:
            getattr(prediction_service_pb2_grpc.PredictionServiceStub(ch), method)(request, timeout=120)
        except grpc.RpcError as exc:
            return exc.code().name  # type: ignore[attr-defined, no-any-return]
    return "OK"


def gzip_post(url: str, document: Any) -> tuple[int, int]:
    body = gzip.compress(json.dumps(document).encode(), 6)
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    return httpx.post(url, content=body, headers=headers, timeout=120).status_code, len(body)


@contextmanager
def measured(stack: Stack, outcome: Outcome, name: str, figures: dict[str, Any]) -> Iterator[None]:
    """Run one class between neighbours; record peak and kept RssAnon, neighbour errors, log volume."""
    pid = stack.pids()["modelserver"]
    before = {n: len(lines) for n, lines in log_lines(stack).items()}
    gateway = Neighbour(f"{stack.gateway_url}{HOUSING}", {"records": [HOUSING_RECORD]})
    with gateway, GrpcNeighbour(stack.grpc_target) as direct, peak_rss(pid) as found:
        started = found["start"]
        yield
    time.sleep(2.0)  # what is kept once the refused requests are gone (recorded, never a pass condition)
    kept = usage(pid).anon_bytes - started
    new = {n: lines[before.get(n, 0) :] for n, lines in log_lines(stack).items()}
    lines = sum(len(v) for v in new.values())
    tracebacks = sum(_TRACEBACK in line for v in new.values() for line in v)
    errors = gateway.failures + len(direct.errors)
    worst = max([*gateway.latencies, *direct.latencies], default=0.0)
    figures[name] = {
        **figures.get(name, {}),
        "rss_anon_peak_mib": round(growth(found) / MIB, 1),
        "rss_anon_kept_mib": round(kept / MIB, 1),
        "neighbour_requests": len(gateway.latencies) + len(direct.latencies),
        "neighbour_errors": errors,
        "neighbour_error_codes": sorted(set(direct.errors)),
        "neighbour_error_details": sorted(direct.details)[:3],
        "neighbour_worst_ms": round(worst * 1000, 1),
        "log_lines": lines,
        "tracebacks": tracebacks,
    }
    outcome.check(growth(found) < RSS_BOUND_BYTES, f"{name}: RssAnon +{growth(found) / MIB:.0f} MiB at peak")
    outcome.check(kept < RSS_BOUND_BYTES, f"{name}: RssAnon +{kept / MIB:.0f} MiB kept afterwards")
    outcome.check(errors == 0, f"{name}: {errors} neighbour errors ({sorted(set(direct.errors))})")
    outcome.check(tracebacks == 0, f"{name}: {tracebacks} tracebacks in the logs")
    outcome.check(lines <= LOG_LINES_BOUND, f"{name}: {lines} log lines")


# ------------------------------------------------------------------------------------------ the classes
