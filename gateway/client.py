"""The model client: the gateway's only way to talk to model servers (TF Serving's standard gRPC APIs).

Contract
--------
- **Routing.** Each model is served by one model server: ``Settings.server_for(model)``
(``GATEWAY_MODEL_SERVERS``,
  else ``GATEWAY_DEFAULT_MODEL_SERVER``). The client never assumes anything beyond
  ``tensorflow.serving.PredictionService`` and ``tensorflow.serving.ModelService``, so it works unchanged
  against the official ``tensorflow_model_server`` and against ``modelserver/``.
- **Channels.** One shared ``grpc.aio`` channel per address, created lazily on first use inside the running
  event loop and reused by every request (gRPC multiplexes concurrent calls over it and reconnects by itself).
  ``close()`` closes them all; call it once at shutdown. Not thread-safe: use it from one event loop.
- **Deadlines.** Every call has one: ``GATEWAY_TIMEOUT_SECONDS`` for Predict/Classify/Regress,
  ``GATEWAY_METADATA_TIMEOUT_SECONDS`` for metadata, status and config reloads. An expired deadline raises
  ``UpstreamError(DEADLINE_EXCEEDED)`` (HTTP 504).
- **Retries.** Only UNAVAILABLE (server down, restarting, connection refused) is retried: at most
  ``GATEWAY_RETRIES`` extra attempts, sleeping ``GATEWAY_RETRY_BACKOFF_SECONDS * 2**attempt`` between them.
  All
  calls made are idempotent (HandleReloadConfigRequest sets the whole config, so repeating it is harmless).
- **Sizes.** Send and receive limits are ``GATEWAY_MAX_MESSAGE_BYTES`` (the gRPC default of 4 MiB is too small
  for image batches).
- **Errors.** Every gRPC failure is raised as ``gateway.errors.UpstreamError`` carrying the gRPC code and the
  server's message; nothing else escapes. Latency, errors and retries are counted in ``gateway.metrics``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from google.protobuf.wrappers_pb2 import Int64Value

from gateway.errors import UpstreamError
from gateway.metrics import Metrics
from gateway.settings import Settings
from tfs_protos.tensorflow.core.example import example_pb2
from tfs_protos.tensorflow.core.framework import tensor_pb2
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["ModelClient", "model_spec"]

T = TypeVar("T")


def model_spec(
    name: str, version: int | None = None, label: str | None = None, signature: str = ""
) -> model_pb2.ModelSpec:
    """A ModelSpec choosing a version number, a label, or (neither) the latest version."""
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        spec.version.CopyFrom(Int64Value(value=version))
    elif label is not None:
        spec.version_label = label
    return spec


class _Server:
    """The channel and stubs for one address."""

    def __init__(self, address: str, max_bytes: int) -> None:
        self.address = address
        self.channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.max_receive_message_length", max_bytes),
                # Reconnect quickly after a model server restart (default max backoff is 120 s).
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
                ("grpc.enable_retries", 0),
                # Spread calls over every address a name resolves to (k8s headless Service: all replicas).
                ("grpc.lb_policy_name", "round_robin"),
            ],
        )
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)


class ModelClient:
    """Async client for Predict / Classify / Regress / GetModelMetadata / GetModelStatus / ReloadConfig."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._servers: dict[str, _Server] = {}

    def address_for(self, model: str) -> str:
        return self._settings.server_for(model)

    def _server(self, address: str) -> _Server:
        server = self._servers.get(address)
        if server is None:
            server = self._servers[address] = _Server(address, self._settings.max_message_bytes)
        return server

    async def close(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            await server.channel.close(grace=None)

    async def _call(
        self,
        address: str,
        method: str,
        call: Callable[[float], Awaitable[T]],
        timeout: float,  # noqa: ASYNC109 - each attempt's gRPC deadline, not an asyncio timeout
    ) -> T:
        attempts = self._settings.retries + 1
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                reply = await call(timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                self._metrics.upstream_latency.labels(address, method).observe(time.perf_counter() - started)
                self._metrics.upstream_errors.labels(address, method, code.name).inc()
                if code is grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                    self._metrics.upstream_retries.labels(address, method).inc()
                    await asyncio.sleep(self._settings.retry_backoff_seconds * 2**attempt)
                    continue
                raise UpstreamError(code, _clean(exc.details()), address=address) from None
            self._metrics.upstream_latency.labels(address, method).observe(time.perf_counter() - started)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def predict(
        self,
        model: str,
        inputs: dict[str, tensor_pb2.TensorProto],
        *,
        version: int | None = None,
        label: str | None = None,
        signature: str = "serving_default",
        output_filter: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 - the call's gRPC deadline
    ) -> predict_pb2.PredictResponse:
        request = predict_pb2.PredictRequest(
            model_spec=model_spec(model, version, label, signature), output_filter=list(output_filter)
        )
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        server = self._server(self.address_for(model))
        return await self._call(
            server.address,
            "Predict",
            lambda t: server.prediction.Predict(request, timeout=t),
            timeout or self._settings.timeout_seconds,
        )

    async def classify(
        self,
        model: str,
        examples: Sequence[example_pb2.Example],
        *,
        version: int | None = None,
        label: str | None = None,
        signature: str = "classify",
    ) -> classification_pb2.ClassificationResponse:
        request = classification_pb2.ClassificationRequest(
            model_spec=model_spec(model, version, label, signature),
            input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=list(examples))),
        )
        server = self._server(self.address_for(model))
        return await self._call(
            server.address,
            "Classify",
            lambda t: server.prediction.Classify(request, timeout=t),
            self._settings.timeout_seconds,
        )

    async def regress(
        self,
        model: str,
        examples: Sequence[example_pb2.Example],
        *,
        version: int | None = None,
        label: str | None = None,
        signature: str = "regress",
    ) -> regression_pb2.RegressionResponse:
        request = regression_pb2.RegressionRequest(
            model_spec=model_spec(model, version, label, signature),
            input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=list(examples))),
        )
        server = self._server(self.address_for(model))
        return await self._call(
            server.address,
            "Regress",
            lambda t: server.prediction.Regress(request, timeout=t),
            self._settings.timeout_seconds,
        )

    async def metadata(
        self, model: str, *, version: int | None = None, label: str | None = None
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_spec(model, version, label), metadata_field=["signature_def"]
        )
        server = self._server(self.address_for(model))
        return await self._call(
            server.address,
            "GetModelMetadata",
            lambda t: server.prediction.GetModelMetadata(request, timeout=t),
            self._settings.metadata_timeout_seconds,
        )

    async def status(
        self, model: str, *, version: int | None = None, retry: bool = True
    ) -> get_model_status_pb2.GetModelStatusResponse:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_spec(model, version))
        server = self._server(self.address_for(model))
        call = lambda t: server.models.GetModelStatus(request, timeout=t)  # noqa: E731
        if not retry:  # readiness probes answer at once
            return await self._call_once(server.address, "GetModelStatus", call)
        return await self._call(
            server.address, "GetModelStatus", call, self._settings.metadata_timeout_seconds
        )

    async def _call_once(self, address: str, method: str, call: Callable[[float], Awaitable[T]]) -> T:
        try:
            return await call(self._settings.metadata_timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            self._metrics.upstream_errors.labels(address, method, exc.code().name).inc()
            raise UpstreamError(exc.code(), _clean(exc.details()), address=address) from None

    async def reload_config(self, address: str, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Replace the WHOLE model config of the server at ``address`` (TF Serving semantics)."""
        request = model_management_pb2.ReloadConfigRequest(config=config)
        server = self._server(address)
        reply = await self._call(
            address,
            "HandleReloadConfigRequest",
            lambda t: server.models.HandleReloadConfigRequest(request, timeout=t),
            max(self._settings.metadata_timeout_seconds, 30.0),
        )
        if reply.status.error_code != 0:
            raise UpstreamError(
                _status_code(reply.status.error_code), reply.status.error_message, address=address
            )


def _status_code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def _clean(details: str | None) -> str:
    # gRPC's own connection errors are long multi-line strings; the first line says what happened.
    return (details or "").strip().splitlines()[0][:500] if details else ""
