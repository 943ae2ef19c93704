"""End to end: a real ``python -m modelserver`` under resource exhaustion keeps serving what it serves.

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
    finally:
        for sock in flood:
            sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    wait_until(lambda: "scanned again" in server.log_text(), "the scan working again", interval=0.2)
    serving()
    log = server.log_text()
    assert first == 1 and log.count("cannot scan") == 1, log  # rate-limited: one line, no traceback
    assert "Traceback" not in log, log
    assert "unloaded" not in log and "version 1 seen" not in log.split("cannot scan")[1], log
    metrics = httpx.get(f"{server.url}/monitoring/prometheus/metrics", timeout=30).text
    assert 'modelserver_model_scan_errors_total{error="EMFILE",model="half"}' in metrics
    channel.close()
