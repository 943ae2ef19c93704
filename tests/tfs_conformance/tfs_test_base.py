"""Port of TF Serving's ``model_servers/test_util/tensorflow_model_server_test_base.py``: the helpers its
integration test uses, with ``tensorflow_model_server`` replaced by ``python -m modelserver``.

What changed against the original, and why:
- ``RunServer`` is ``ServerPool.run``: the same flags in the same way (``--port``, ``--rest_api_port``,
  ``--rest_api_timeout_in_ms``, ``--grpc_socket_path``, ``--grpc_channel_arguments`` with
  ``grpc.so_reuseaddr=1`` appended, ...), one server per distinct argument set, shared by the cases of a
  module as the original shares them across its class. Ports are free loopback ports, and the gRPC socket is a
  per-server path in a private ``/tmp`` folder instead of the shared ``/tmp/tf-serving.sock``.
- ``WaitForServerReady`` keeps its condition (a Predict for ``intentionally_missing_model`` answers an error
  naming a servable) with a generous deadline as a hang guard; ``CallREST`` keeps one attempt (our server
  opens its ports only once the models are loaded, so there is nothing to retry into).
- ``VerifyPredictRequest``/``_VerifyModelSpec`` are module functions asserting with ``assert``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from devtools.procs import LOOPBACK, REPO_ROOT, ServerProcess, free_port, wait_for_port

__all__ = [
    "DEFAULT_SERVING_SIGNATURE_DEF_KEY",
    "RPC_TIMEOUT",
    "TESTDATA",
    "ServerPool",
    "call_rest",
    "get_model_version",
    "sorted_object",
    "verify_model_spec",
    "verify_predict_request",
]

# The original's 5 s (base) and 20 s (test file) RPC deadlines are hang guards; on a shared 2-core box a
# first call can exceed 5 s, so one generous deadline serves both.
RPC_TIMEOUT = 60.0
HTTP_REST_TIMEOUT_MS = 5000
# A hang guard only: the condition decides (the original polls once a second for 60 s; loading TensorFlow in
# a fresh process on a loaded 2-core box can take longer than that).
WAIT_FOR_SERVER_READY_SECS = 240.0  # below pytest-timeout (300 s), so the log tail is shown
# Servers loading TensorFlow at the same time: one per core of the 2-core boxes this runs on; more only
# contend for the same CPUs and memory.
MAX_STARTING = 2
DEFAULT_SERVING_SIGNATURE_DEF_KEY = "serving_default"
# servables/tensorflow/testdata of the tensorflow/serving repository, vendored (see testdata/NOTICE).
TESTDATA = Path(__file__).resolve().parent / "testdata"


def wait_until_ready(address: str, alive: Any, deadline_secs: float = WAIT_FOR_SERVER_READY_SECS) -> None:
    """The original's readiness condition: a Predict for a missing model answers 'Servable ...'."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "intentionally_missing_model"
    deadline = time.monotonic() + deadline_secs
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while time.monotonic() < deadline and alive():
            try:
                stub.Predict(request, RPC_TIMEOUT)
            except grpc.RpcError as error:
                if "Servable" in (error.details() or ""):
                    return
            time.sleep(0.2)
    raise RuntimeError(f"model server at {address} did not become ready")


class ServerPool:
    """``RunServer`` of the original: one ``python -m modelserver`` per distinct argument set, shared by every
    case that asks for the same arguments and stopped by ``close()`` (module teardown).

    ``launch`` queues a server; a background thread starts queued servers, at most ``MAX_STARTING`` loading at
    a time, so start-ups overlap with each other and with the cases. ``run`` moves its server to the front of
    the queue and waits until it is ready.
    """

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._socket_dir = Path(tempfile.mkdtemp(prefix="tfs-conformance-", dir="/tmp"))
        self._servers: dict[tuple[Any, ...], tuple[ServerProcess, str, str]] = {}
        self._ready: set[ServerProcess] = set()
        self._queue: list[ServerProcess] = []
        self._starting: list[tuple[ServerProcess, int]] = []  # (process, REST port): open once loaded
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._starter = threading.Thread(target=self._start_queued, name="server-pool", daemon=True)
        self._starter.start()

    def _start_queued(self) -> None:
        while not self._closed.wait(0.1):
            self._pump()

    def _pump(self) -> None:
        with self._lock:
            self._starting = [
                (proc, rest)
                for proc, rest in self._starting
                if proc.alive() and not wait_for_port(rest, 0.05)
            ]
            while self._queue and len(self._starting) < MAX_STARTING and not self._closed.is_set():
                proc = self._queue.pop(0)
                proc.start()  # no ports given: returns at once
                self._starting.append((proc, proc.rest_api_port))  # type: ignore[attr-defined]

    env: ClassVar[dict[str, str]] = {
        "MODELSERVER_BIND_HOST": LOOPBACK,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO_ROOT),
    }

    def command(
        self,
        model_name: str | None,
        model_path: str | Path | None,
        *,
        port: int | None = None,
        rest_api_port: int | None = None,
        model_config_file: str | Path | None = None,
        monitoring_config_file: str | Path | None = None,
        batching_parameters_file: str | Path | None = None,
        grpc_channel_arguments: str = "",
        model_config_file_poll_period: int | None = None,
        model_type: str = "tf",
    ) -> list[str]:
        """The original's command line, ``tensorflow_model_server`` replaced by ``python -m modelserver``."""
        port = port or free_port()
        rest_api_port = rest_api_port or free_port()
        command = f"{shlex.quote(sys.executable)} -m modelserver"
        command += " --port=" + str(port)
        command += " --rest_api_port=" + str(rest_api_port)
        command += " --rest_api_timeout_in_ms=" + str(HTTP_REST_TIMEOUT_MS)
        command += " --grpc_socket_path=" + shlex.quote(str(self.socket_path(port)))
        if model_config_file:
            command += " --model_config_file=" + shlex.quote(str(model_config_file))
        elif model_path:
            command += " --model_name=" + str(model_name)
            command += " --model_base_path=" + shlex.quote(str(model_path))
        else:
            raise ValueError("Both model_config_file and model_path cannot be empty!")
        if monitoring_config_file:
            command += " --monitoring_config_file=" + shlex.quote(str(monitoring_config_file))
        if model_config_file_poll_period is not None:
            command += " --model_config_file_poll_wait_seconds=" + str(model_config_file_poll_period)
        if batching_parameters_file:
            command += " --enable_batching"
            command += " --batching_parameters_file=" + shlex.quote(str(batching_parameters_file))
        if model_type == "tflite":
            command += " --prefer_tflite_model=true"
        args_list = [arg for arg in (grpc_channel_arguments, "grpc.so_reuseaddr=1") if arg]
        command += " --grpc_channel_arguments=" + ",".join(args_list)
        return shlex.split(command)

    def socket_path(self, port: int) -> Path:
        # A UNIX socket path is limited to 107 bytes: the official test's /tmp, one folder per pool.
        return self._socket_dir / f"tf-serving-{port}.sock"

    def launch(
        self, model_name: str | None, model_path: str | Path | None, **flags: Any
    ) -> tuple[ServerProcess, str, str]:
        """Queue the server for this argument set unless it is known already; returns at once.
        ``flags`` are ``command``'s keyword arguments."""
        key = (model_name, str(model_path), tuple(sorted((k, str(v)) for k, v in flags.items())))
        with self._lock:
            if key in self._servers:
                return self._servers[key]
            port = free_port()
            rest_api_port = free_port()
            while rest_api_port == port:
                rest_api_port = free_port()
            command = self.command(model_name, model_path, port=port, rest_api_port=rest_api_port, **flags)
            proc = ServerProcess(command, log_path=self.work_dir / f"modelserver-{port}.log", env=self.env)
            proc.grpc_socket_path = str(self.socket_path(port))  # type: ignore[attr-defined]
            proc.rest_api_port = rest_api_port  # type: ignore[attr-defined]
            self._servers[key] = (proc, f"{LOOPBACK}:{port}", f"{LOOPBACK}:{rest_api_port}")
            self._queue.append(proc)
            return self._servers[key]

    def run(
        self,
        model_name: str | None,
        model_path: str | Path | None,
        *,
        wait_for_server_ready: bool = True,
        **flags: Any,
    ) -> tuple[ServerProcess, str, str]:
        """``RunServer``: (process, grpc host:port, rest host:port) of the server for this argument set,
        started if needed and, by default, ready; the process also has ``grpc_socket_path``."""
        hostports = self.launch(model_name, model_path, **flags)
        proc = hostports[0]
        with self._lock:
            if proc in self._queue:  # this case needs it now
                self._queue.remove(proc)
                self._queue.insert(0, proc)
        deadline = time.monotonic() + WAIT_FOR_SERVER_READY_SECS
        while proc.process is None:  # queued behind servers still loading
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.command}: not started (servers ahead of it did not load)")
            self._pump()
            time.sleep(0.1)
        if wait_for_server_ready and proc not in self._ready:
            try:
                wait_until_ready(hostports[1], proc.alive)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}. Log tail:\n{proc.log_text()}") from None
            self._ready.add(proc)
        return hostports

    def close(self) -> None:
        self._closed.set()
        self._starter.join()
        procs = [proc for proc, _, _ in self._servers.values()]
        for proc in procs:  # all drain at once, then each is waited for (SIGKILL after a grace period)
            if proc.process is not None and proc.alive():
                proc.process.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.stop()
        shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._servers.clear()
        self._ready.clear()


def call_rest(url: str, req: Any) -> bytes:
    """HTTP response body of a REST call (a JSON body is POSTed; None GETs)."""
    json_data = json.dumps(req).encode("utf-8") if req is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=json_data), timeout=30) as resp:
        return bytes(resp.read())


def sorted_object(obj: Any) -> Any:
    """Returns sorted object (with nested list/dictionaries)."""
    if isinstance(obj, dict):
        return sorted((k, sorted_object(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return sorted(sorted_object(x) for x in obj)
    if isinstance(obj, tuple):
        return list(sorted(sorted_object(x) for x in obj))
    return obj


def get_model_version(model_path: str | Path) -> int:
    """The version of the only (integer-named) directory under ``model_path``."""
    return int(os.listdir(model_path)[0])


def verify_model_spec(
    actual_model_spec: model_pb2.ModelSpec, exp_model_name: str, exp_signature_name: str, exp_version: int
) -> None:
    assert actual_model_spec.name == exp_model_name
    assert actual_model_spec.signature_name == exp_signature_name
    assert actual_model_spec.version.value == exp_version


def verify_predict_request(
    model_server_address: str,
    expected_output: float,
    expected_version: int,
    model_name: str = "default",
    specify_output: bool = True,
    batch_input: bool = False,
    signature_name: str = DEFAULT_SERVING_SIGNATURE_DEF_KEY,
    rpc_timeout: float = RPC_TIMEOUT,
) -> None:
    """Send PredictionService.Predict request and verify output."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    dim = request.inputs["x"].tensor_shape.dim.add()
    dim.size = 1
    if batch_input:
        request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    with grpc.insecure_channel(model_server_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.Predict(request, rpc_timeout)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert len(result.outputs["y"].float_val) == 1
    assert result.outputs["y"].float_val[0] == expected_output
    verify_model_spec(result.model_spec, request.model_spec.name, signature_name, expected_version)
