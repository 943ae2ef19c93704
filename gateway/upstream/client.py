"""The model client: the gateway's only way to talk to model servers (TF Serving's standard gRPC APIs).

Contract
--------
- **Routing.** Each model is served by one model server address: ``Settings.server_for(model)``
  (``GATEWAY_MODEL_SERVERS``, else ``GATEWAY_DEFAULT_MODEL_SERVER``), a name that may resolve to every replica
  (gRPC's ``round_robin`` spreads calls over them), or by the list of replicas in ``GATEWAY_MODEL_REPLICAS``
  (calls take turns among those in rotation, see Failover). ``replicas(model)`` resolves every replica to one
  ``ip:port`` each (all A/AAAA records of the name) for calls that must reach each one: status, metadata and
  config reloads accept ``address=``. The client never assumes anything beyond
  ``tensorflow.serving.PredictionService`` and ``tensorflow.serving.ModelService``, so it works unchanged
  against the official ``tensorflow_model_server`` and against ``modelserver/``.
- **Channels** (``gateway.upstream.channels``). ``GATEWAY_CHANNELS_PER_SERVER`` shared ``grpc.aio`` channels
  per address (default 4), each its own connection, created lazily on first use inside the running event loop
  and reused by every request in turn (gRPC multiplexes concurrent calls over each and reconnects by itself).
  A model server with several processes on one port (``--num_workers``) serves each connection from one of
  them, so this is what spreads one gateway's calls over its workers. ``close()`` closes them all; call it
  once at shutdown. Not thread-safe: use it from one event loop.
- **Deadlines.** Every call has one: ``GATEWAY_TIMEOUT_SECONDS`` for Predict/Classify/Regress,
  ``GATEWAY_METADATA_TIMEOUT_SECONDS`` for metadata, status and config reloads. An expired deadline raises
  ``UpstreamError(DEADLINE_EXCEEDED)`` (HTTP 504).
- **Retries.** UNAVAILABLE (server down, restarting, connection refused) is retried: at most
  ``GATEWAY_RETRIES`` extra attempts, sleeping ``GATEWAY_RETRY_BACKOFF_SECONDS * 2**attempt`` between them (no
  sleep when the next attempt goes to another replica in rotation). All calls made are idempotent
  (HandleReloadConfigRequest sets the whole config, so repeating it is harmless).
- **Failover** (a model with two or more replicas in ``GATEWAY_MODEL_REPLICAS``; calls not sent to a given
  ``address``): an attempt on a hung, partitioned or failing replica is retried at once on another one, and
  health checks take replicas out of rotation and back; the rules are ``gateway.upstream.replicas``'.
- **Sizes.** Send and receive limits are ``GATEWAY_MAX_MESSAGE_BYTES`` (the gRPC default of 4 MiB is too small
  for image batches).
- **Protocols.** A model is called over TF Serving's APIs unless ``GATEWAY_MODEL_PROTOCOLS`` says ``oip``:
  then over the Open Inference Protocol's ``inference.GRPCInferenceService`` (Triton, KServe runtimes, our
  modelserver), translated by ``gateway.upstream.oip`` so callers always get TF Serving's reply messages.
  Classify, Regress and config reloads exist only in TF Serving's API.
- **Errors.** Every gRPC failure is raised as ``gateway.errors.UpstreamError`` carrying the gRPC code and the
  server's message; nothing else escapes. Latency, errors and retries are counted in ``gateway.metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.wrappers_pb2 import Int64Value

from gateway import tracing
from gateway.errors import UpstreamError
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream import DEFAULT_SIGNATURE, oip
from gateway.upstream.channels import Server
from gateway.upstream.coalesce import Coalescer
from gateway.upstream.replicas import Rotation, split_address
from tfs_protos.tensorflow.core.example import example_pb2
from tfs_protos.tensorflow.core.framework import tensor_pb2
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["ModelClient", "model_spec", "split_address"]

T = TypeVar("T")
log = logging.getLogger("gateway.client")
Pick = Callable[[Collection[str]], str]  # the next address, avoiding those already tried by this call


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


@dataclass(frozen=True)
class _PredictCall:
    """Everything a Predict depends on but its inputs (hashable: the key calls are coalesced by)."""

    model: str
    version: int | None
    label: str | None
    signature: str
    output_filter: tuple[str, ...]
    timeout: float | None
    address: str | None


def _refused_merged(exc: BaseException) -> bool:
    """A merged Predict's error that its callers' own requests may not meet: a batch over the server's
    ``max_batch_size`` is INVALID_ARGUMENT (so is a bad input, which each caller then gets for itself)."""
    return isinstance(exc, UpstreamError) and exc.code is grpc.StatusCode.INVALID_ARGUMENT


class ModelClient(Rotation):
    """Async client for Predict / Classify / Regress / GetModelMetadata / GetModelStatus / ReloadConfig."""

    def __init__(
        self, settings: Settings, metrics: Metrics, targets: Callable[[str], list[str]] | None = None
    ) -> None:
        """``targets``: model -> where its replicas are (default ``settings.replica_targets``; the app
        passes ``Catalog.replica_targets``, which also knows models added at run time)."""
        super().__init__(settings, metrics, targets)
        self._servers: dict[str, Server] = {}
        self._coalescer = (
            Coalescer(settings.max_files, metrics.coalesced.observe, alone=_refused_merged)
            if settings.coalesce
            else None
        )

    def _oip(self, model: str) -> bool:
        return self._settings.protocol_for(model) == "oip"

    def _server(self, address: str) -> Server:
        server = self._servers.get(address)
        if server is None:
            server = self._servers[address] = Server(
                address, self._settings.max_message_bytes, self._settings.channels_per_server
            )
        return server

    async def close(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            await server.close()

    async def _call(
        self,
        pick: Pick,
        method: str,
        call: Callable[[Server, float], Awaitable[T]],
        timeout: float,  # noqa: ASYNC109 - the call's gRPC deadline (each attempt's without failover)
        failover: str | None = None,
    ) -> T:
        """One call with retries on UNAVAILABLE; each attempt asks ``pick`` for an address, so a listed
        replica that is down is skipped on the next attempt. ``failover``: the model whose replicas may
        answer instead (module docstring), for calls that may go to any of them."""
        if failover is not None and not self._failover(failover):
            failover = None
        attempts = self._settings.retries + 1
        deadline = time.monotonic() + timeout
        tried: list[str] = []
        for attempt in range(attempts):
            server = self._server(pick(tried))
            address = server.address
            tried.append(address)
            budget = timeout
            spare = False
            if failover is not None:
                budget = max(deadline - time.monotonic(), 0.001)
                spare = self._spare(failover, tried) and self._settings.failover_timeout_seconds > 0
            attempt_timeout = min(budget, self._settings.failover_timeout_seconds) if spare else budget
            started = time.perf_counter()
            try:
                reply = await call(server, attempt_timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                self._metrics.upstream_latency.labels(address, method).observe(time.perf_counter() - started)
                self._metrics.upstream_errors.labels(address, method, code.name).inc()
                cut = code is grpc.StatusCode.DEADLINE_EXCEEDED and attempt_timeout < budget
                if failover is not None and (code is grpc.StatusCode.UNAVAILABLE or cut):
                    self._eject(address, "timeout" if cut else "error")
                # a replica still converging may not have the version yet: another one that has it answers
                lagging = (
                    code is grpc.StatusCode.NOT_FOUND
                    and failover is not None
                    and self._spare(failover, tried)
                )
                again = code is grpc.StatusCode.UNAVAILABLE or cut or lagging
                if again and attempt + 1 < attempts and (failover is None or time.monotonic() < deadline):
                    self._metrics.upstream_retries.labels(address, method).inc()
                    if not (failover is not None and self._spare(failover, tried)):
                        await asyncio.sleep(self._settings.retry_backoff_seconds * 2**attempt)
                    continue
                raise UpstreamError.from_rpc(exc, address) from None
            self._metrics.upstream_latency.labels(address, method).observe(time.perf_counter() - started)
            self._strikes.pop(address, None)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def _to_model(
        self,
        model: str,
        method: str,
        call: Callable[[Server, float], Awaitable[T]],
        timeout: float,  # noqa: ASYNC109 - the call's gRPC deadline
        address: str | None = None,
    ) -> T:
        """``call`` on ``address``, or on the model's replicas in turn (with failover) when it is None."""
        return await self._call(
            lambda tried: address or self.address_for(model, tried),
            method,
            call,
            timeout,
            failover=None if address else model,
        )

    async def predict(
        self,
        model: str,
        inputs: dict[str, tensor_pb2.TensorProto],
        *,
        version: int | None = None,
        label: str | None = None,
        signature: str = DEFAULT_SIGNATURE,
        output_filter: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 - the call's gRPC deadline
        address: str | None = None,
        batchable: bool = False,
    ) -> predict_pb2.PredictResponse:
        """Predict on ``address``, or on the model's replicas in turn when it is None. ``batchable``: the
        signature's inputs all have an unknown first dimension, so concurrent calls may share one Predict
        (``gateway.upstream.coalesce``, when ``GATEWAY_COALESCE`` is on)."""
        call = _PredictCall(model, version, label, signature, tuple(output_filter), timeout, address)
        if batchable and self._coalescer is not None:
            return await self._coalescer.run(call, inputs, lambda tensors: self._predict(call, tensors))
        return await self._predict(call, inputs)

    async def _predict(
        self, call: _PredictCall, inputs: Mapping[str, tensor_pb2.TensorProto]
    ) -> predict_pb2.PredictResponse:
        timeout = call.timeout or self._settings.timeout_seconds
        if self._oip(call.model):
            infer = oip.infer_request(
                call.model,
                inputs,
                version=call.version,
                label=call.label,
                signature=call.signature,
                output_filter=call.output_filter,
            )
            return await self._to_model(
                call.model,
                "ModelInfer",
                lambda server, t: oip.infer(server, infer, call.signature, t),
                timeout,
                call.address,
            )
        request = predict_pb2.PredictRequest(
            model_spec=model_spec(call.model, call.version, call.label, call.signature),
            output_filter=list(call.output_filter),
        )
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        with tracing.span("upstream call", model=call.model):  # both no-ops when tracing is off
            md = tracing.metadata()
            return await self._to_model(
                call.model,
                "Predict",
                lambda server, t: server.prediction.Predict(request, timeout=t, metadata=md),
                timeout,
                call.address,
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
            model_spec=model_spec(model, version, label, signature), input=_example_list(examples)
        )
        return await self._to_model(
            model,
            "Classify",
            lambda server, t: server.prediction.Classify(request, timeout=t),
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
            model_spec=model_spec(model, version, label, signature), input=_example_list(examples)
        )
        return await self._to_model(
            model,
            "Regress",
            lambda server, t: server.prediction.Regress(request, timeout=t),
            self._settings.timeout_seconds,
        )

    async def metadata(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        address: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the call's gRPC deadline
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Metadata from ``address``, or from the model's replicas in rotation (with failover)."""
        deadline = timeout or self._settings.metadata_timeout_seconds
        if self._oip(model):
            return await self._to_model(
                model,
                "ModelMetadata",
                lambda server, t: oip.metadata(server, model, version, label, t),
                deadline,
                address,
            )
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_spec(model, version, label), metadata_field=["signature_def"]
        )
        return await self._to_model(
            model,
            "GetModelMetadata",
            lambda server, t: server.prediction.GetModelMetadata(request, timeout=t),
            deadline,
            address,
        )

    async def status(
        self,
        model: str,
        *,
        version: int | None = None,
        retry: bool = True,
        address: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the call's gRPC deadline
    ) -> get_model_status_pb2.GetModelStatusResponse:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_spec(model, version))

        def call(server: Server, t: float) -> Awaitable[get_model_status_pb2.GetModelStatusResponse]:
            if self._oip(model):
                return oip.status(server, model, version, t)
            return server.models.GetModelStatus(request, timeout=t)  # type: ignore[no-any-return]

        if not retry:  # readiness probes answer at once
            return await self._call_once(address or self.address_for(model), "GetModelStatus", call)
        return await self._call(
            lambda tried: address or self.address_for(model, tried),
            "GetModelStatus",
            call,
            timeout or self._settings.metadata_timeout_seconds,
        )

    async def _call_once(self, address: str, method: str, call: Callable[[Server, float], Awaitable[T]]) -> T:
        try:
            return await call(self._server(address), self._settings.metadata_timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            self._metrics.upstream_errors.labels(address, method, exc.code().name).inc()
            raise UpstreamError.from_rpc(exc, address) from None

    async def reload_config(
        self,
        address: str,
        config: model_server_config_pb2.ModelServerConfig,
        timeout: float | None = None,  # noqa: ASYNC109 - the call's gRPC deadline
    ) -> None:
        """Replace the WHOLE model config of the server at ``address`` (TF Serving semantics)."""
        request = model_management_pb2.ReloadConfigRequest(config=config)
        token = self._settings.model_control_token
        metadata = (("authorization", f"Bearer {token.get_secret_value()}"),) if token else None
        reply = await self._call(
            lambda _: address,
            "HandleReloadConfigRequest",
            lambda server, t: server.models.HandleReloadConfigRequest(request, timeout=t, metadata=metadata),
            timeout or max(self._settings.metadata_timeout_seconds, 30.0),
        )
        if reply.status.error_code != 0:
            raise UpstreamError.from_status(reply.status.error_code, reply.status.error_message, address)


def _example_list(examples: Sequence[example_pb2.Example]) -> input_pb2.Input:
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=list(examples)))
