"""End to end: a real ``python -m modelserver`` under resource exhaustion keeps serving what it serves.

Connections, streams and bodies: past ``--max_connections_per_port`` a gRPC connection is closed as soon as
it is accepted and a REST one gets 503; HTTP/2 rapid reset and message-less stream floods leave a neighbour
on its own connection served (streams past MAX_CONCURRENT_STREAMS refused); a body dripped a byte at a time
gets 408 at ``--rest_api_body_deadline_seconds``.

Descriptors: the server's open-file limit is lowered (``prlimit``) to a little above what it holds, then idle
TCP connections to its gRPC port take the rest, so the next version scan fails with EMFILE - the probe of
issue 25 (20,000 idle HTTP/2 connections unloaded every model). The version stays AVAILABLE and answers a
neighbour on its existing connection throughout, the failure is logged once, and once the connections are
gone the scan works again and is counted in the metrics.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc as prediction_grpc

from devtools.procs import LOOPBACK
from devtools.servers import ModelServerHandle, start_modelserver
from devtools.tiny_models import publish
from devtools.waiting import wait_until
from modelserver.protocols.tfs.grpc_service import MAX_CONCURRENT_STREAMS
from reliability.http2 import idle_streams, ping_flood, rapid_reset

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tiny: dict[str, Path], tmp_path: Path) -> Iterator[ModelServerHandle]:
    publish(tiny["half_plus_two"], tmp_path / "half", 1)
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }')
    flags = ["--file_system_poll_wait_seconds=1", f"--monitoring_config_file={monitoring}"]
    with start_modelserver(
        model_name="half", model_base_path=tmp_path / "half", extra_flags=flags, log_path=tmp_path / "ms.log"
    ) as handle:
        yield handle


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_descriptor_exhaustion_never_unloads_a_serving_version(server: ModelServerHandle) -> None:
    channel = grpc.insecure_channel(server.grpc_target)
    predictions = prediction_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([2.0], np.float32)))
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "half"

    def serving() -> bool:
        assert list(predictions.Predict(request, timeout=30).outputs["y"].float_val) == [3.0]
        states = [s.state for s in models.GetModelStatus(status, timeout=30).model_version_status]
        assert states == [get_model_status_pb2.ModelVersionStatus.AVAILABLE], states
        return True

    serving()  # the neighbour's connection is open before the flood
    pid = server.pid
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (_open_fds(pid) + 24, hard))
    flood: list[socket.socket] = []
    try:
        # connect() completes in the kernel's backlog whether or not the server can accept: keep opening
        # until the server holds every descriptor its limit allows
        def exhausted() -> bool:
            for _ in range(8):
                flood.append(socket.create_connection((LOOPBACK, server.grpc_port)))
            return _open_fds(pid) >= resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]

        wait_until(exhausted, "the server at its open-file limit", interval=0.2)
        wait_until(lambda: "cannot scan" in server.log_text(), "a failed version scan", interval=0.2)
        for _ in range(3):  # polls keep failing; the version stays AVAILABLE and answers
            serving()
        first = server.log_text().count("cannot scan")
        # the REST port cannot accept either: one line (no traceback per retry), the waiting clients shed
        rest = [socket.create_connection((LOOPBACK, server.rest_port or 0)) for _ in range(5)]
        flood.extend(rest)
        wait_until(lambda: "accept() failed" in server.log_text(), "the accept failure logged", interval=0.2)
        wait_until(lambda: all(_closed_at_once(sock) for sock in rest), "the waiting REST clients shed")
    finally:
        for sock in flood:
            sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    wait_until(lambda: "scanned again" in server.log_text(), "the scan working again", interval=0.2)
    serving()
    log = server.log_text()
    assert first == 1 and log.count("cannot scan") == 1, log  # rate-limited: one line, no traceback
    assert "Traceback" not in log and "out of system resource" not in log, log
    assert log.count("accept() failed") == 1, log  # asyncio retries every second: one line a minute
    assert "unloaded" not in log and "version 1 seen" not in log.split("cannot scan")[1], log
    metrics = httpx.get(f"{server.url}/monitoring/prometheus/metrics", timeout=30).text
    assert 'modelserver_model_scan_errors_total{error="EMFILE",model="half"}' in metrics
    channel.close()


# ------------------------------------------------------------------ connection, stream and body bounds

CAP = 8  # --max_connections_per_port
BODY_DEADLINE = 2.0


@pytest.fixture(scope="module")
def bounded(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    root = tmp_path_factory.mktemp("bounded")
    publish(tiny["half_plus_two"], root / "half", 1)
    flags = [f"--max_connections_per_port={CAP}", f"--rest_api_body_deadline_seconds={BODY_DEADLINE}"]
    with start_modelserver(
        model_name="half", model_base_path=root / "half", extra_flags=flags, log_path=root / "ms.log"
    ) as handle:
        yield handle


class GrpcNeighbour:
    """A well-behaved client on its own connection: Predict every 20 ms in a thread, errors counted."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_grpc.PredictionServiceStub(self.channel)
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = "half"
        self.request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([2.0], np.float32)))
        self.answers = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.stub.Predict(self.request, timeout=30)
                self.answers += 1
            except grpc.RpcError as exc:
                self.errors.append(exc.code().name)  # type: ignore[attr-defined]

    def __enter__(self) -> GrpcNeighbour:
        self.stub.Predict(self.request, timeout=30)  # connected before the abuse starts
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.channel.close()


def _closed_at_once(sock: socket.socket) -> bool:
    """True when the server closes the connection (or answers and closes) without being asked anything."""
    sock.settimeout(30)  # hang guard
    try:
        data = sock.recv(1 << 16)
        while data and not data.startswith(b"HTTP/1.1 503"):
            if data.startswith(b"\x00"):  # an HTTP/2 frame: the server took the connection
                return False
            data = sock.recv(1 << 16)
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_grpc_connections_past_the_cap_are_closed_and_neighbours_served(bounded: ModelServerHandle) -> None:
    with GrpcNeighbour(bounded.grpc_target) as neighbour:
        flood = [socket.create_connection((LOOPBACK, bounded.grpc_port)) for _ in range(3 * CAP)]
        try:
            for sock in flood:  # the HTTP/2 preface: a taken connection answers with SETTINGS
                sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            closed = sum(_closed_at_once(sock) for sock in flood)
        finally:
            for sock in flood:
                sock.close()
        assert closed >= 2 * CAP, closed
        wait_until(lambda: neighbour.answers > 5, "the neighbour answered during the flood")
    assert neighbour.errors == []


def test_rest_connections_past_the_cap_get_503(bounded: ModelServerHandle) -> None:
    flood = [socket.create_connection((LOOPBACK, bounded.rest_port or 0)) for _ in range(2 * CAP)]
    try:
        wait_until(lambda: sum(_closed_at_once(s) for s in flood[CAP:]) == CAP, "503 past the cap")
    finally:
        for sock in flood:
            sock.close()
    assert httpx.get(f"{bounded.url}/v1/models/half", timeout=30).status_code == 200  # freed again


def test_http2_rapid_reset_and_idle_stream_flood_leave_neighbours_served(bounded: ModelServerHandle) -> None:
    """CVE-2023-44487's loop on one connection, then message-less streams past MAX_CONCURRENT_STREAMS on
    another: the neighbour (its own connection) gets no error; the idle streams past the limit are refused."""
    with GrpcNeighbour(bounded.grpc_target) as neighbour:
        reset = rapid_reset(LOOPBACK, bounded.grpc_port, 5000)
        idle = idle_streams(LOOPBACK, bounded.grpc_port, 3 * MAX_CONCURRENT_STREAMS)
        try:
            assert idle.refused >= 2 * MAX_CONCURRENT_STREAMS, idle
            wait_until(lambda: neighbour.answers > 5, "the neighbour answered during the abuse")
        finally:
            idle.close()
    assert reset.sent == 5000 or reset.goaway or reset.closed, reset
    assert neighbour.errors == []
    assert bounded.alive()


def test_as_many_calls_on_one_channel_as_streams_per_connection_all_succeed(
    bounded: ModelServerHandle,
) -> None:
    """A legitimate client with the stock tensorflow-serving-api stub and MAX_CONCURRENT_STREAMS calls at once
    on one channel: none fails. (Past it grpcio does not reliably queue: the server still counts streams being
    torn down and refuses new ones, REFUSED_STREAM, which the client reports UNAVAILABLE.)"""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([2.0], np.float32)))
    with grpc.insecure_channel(bounded.grpc_target) as channel:
        stub = prediction_grpc.PredictionServiceStub(channel)
        stub.Predict(request, timeout=30)  # connected: the client has the server's SETTINGS
        futures = [stub.Predict.future(request, timeout=120) for _ in range(MAX_CONCURRENT_STREAMS)]
        replies = [future.result() for future in futures]  # raises the first error
    assert {tuple(reply.outputs["y"].float_val) for reply in replies} == {(3.0,)}


def test_a_ping_flood_gets_goaway(bounded: ModelServerHandle) -> None:
    """PINGs with no call: grpc-core's ping strikes end the connection (GOAWAY ENHANCE_YOUR_CALM)."""
    with GrpcNeighbour(bounded.grpc_target) as neighbour:
        report = ping_flood(LOOPBACK, bounded.grpc_port, 2000)
        wait_until(lambda: neighbour.answers > 5, "the neighbour answered")
    assert report.goaway == "ENHANCE_YOUR_CALM" and report.sent < 2000, report
    assert neighbour.errors == []


def test_a_dripped_rest_body_gets_408_at_the_total_deadline(bounded: ModelServerHandle) -> None:
    """One byte every 0.5 s never stalls (the idle timeout is 30 s) but never ends: 408 at the deadline."""
    with socket.create_connection((LOOPBACK, bounded.rest_port or 0), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/models/half:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        reply = b""
        for _ in range(200):  # hang guard: 100 s of dripping
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(0.5)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            reply += chunk
            if not chunk or b"\r\n\r\n" in reply:
                break
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"not received within 2 s" in reply, reply
