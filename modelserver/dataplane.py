"""DataPlane: the protocol-neutral heart of the modelserver. The gRPC and REST adapters (TF Serving's and the
Open Inference Protocol's) only convert and delegate to it; it resolves model specs to servable handles,
runs requests on the version it holds (``modelserver.runtime.execution``; through the batcher when
``--enable_batching``), and counts every request in the metrics - so all protocols behave and are measured
identically.

Contract:
- Every method raises ``ServingError`` (TF Serving's codes and messages) for anything the caller can fix, or
  when nothing can serve the request; never another exception.
- A request acquires one handle, on the version that answers it, and holds it from resolution to reply: hot
  swaps never change the version mid-request, and the reply's ``model_spec`` names that version. Adapters
  that parse against the signature (REST JSON, OIP) do it inside ``prediction(spec)``, on the held version.
- TensorFlow runs in worker threads; the event loop only converts and schedules.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from modelserver.control import ModelControl
from modelserver.errors import ConfigError, InvalidArgument, ServingError
from modelserver.lifecycle.core import ServerCore
from modelserver.lifecycle.handle import ServableHandle
from modelserver.lifecycle.model_config import ModelEntry, model_entries
from modelserver.metrics import METRICS, Metrics
from modelserver.observe.drift import DriftMonitor
from modelserver.observe.request_log import RecordBuilder, RequestLog, predict_record
from modelserver.runtime.batching import Batcher
from modelserver.runtime.execution import (
    Execution,
    Prediction,
    check_multi_inference,
    resolved_spec,
    spec_version,
)
from modelserver.runtime.limits import DEFAULT_LIMITS, RequestLimits
from modelserver.runtime.runner import Runner
from modelserver.runtime.servable import DEFAULT_SIGNATURE, Servable, serving_error_from_tf
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

__all__ = ["PROTOCOL", "DataPlane"]

log = logging.getLogger("modelserver.dataplane")

# Set by each adapter ("grpc" / "rest") around its calls; a metrics label.
PROTOCOL: contextvars.ContextVar[str] = contextvars.ContextVar("modelserver_protocol", default="grpc")


# One request's metric series, by label values: prometheus_client's ``labels()`` validates and locks on every
# call (~2/3 of the 13 us two of them cost per request, 2026-12-06). The labels are bounded (below) and no
# series is ever removed, so a series found once stays the one to count in.
_Series = tuple[Any, Any]


class _Call:
    """Times one request and counts it with its final labels."""

    __slots__ = ("api", "metrics", "model", "requested", "series", "signature", "started", "version")

    def __init__(
        self,
        metrics: Metrics,
        series: dict[tuple[str, ...], _Series],
        api: str,
        model: str,
        known: bool,
        signature: str = "",
    ) -> None:
        self.metrics, self.series, self.api, self.requested = metrics, series, api, signature
        self.model = model if known else "_unknown"  # bounded label cardinality
        # likewise the signature: a client's name only once the served version has it (``serving``), so
        # random signature names cannot grow the metrics without bound (issue 25: what a client makes us keep)
        self.signature = signature if signature in ("", DEFAULT_SIGNATURE) else "_unknown"
        self.version = ""
        self.started = time.perf_counter()

    def done(self, status: str) -> None:
        labels = (self.model, self.version, self.signature, self.api, PROTOCOL.get(), status)
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = (
                self.metrics.requests.labels(*labels),
                self.metrics.request_latency.labels(*labels),
            )
        series[0].inc()
        series[1].observe(time.perf_counter() - self.started)


class DataPlane:
    def __init__(
        self,
        core: ServerCore,
        *,
        batcher: Batcher | None = None,
        method_name_check: bool = False,
        metrics: Metrics = METRICS,
        threads: int = 8,
        limits: RequestLimits = DEFAULT_LIMITS,
        control: ModelControl | None = None,
        runner: Runner | None = None,
        tensor_content: bool = False,
        request_log: RequestLog | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        """``runner`` (default: ``threads`` worker threads and ``batcher``) is how signatures run;
        ``request_log`` writes the requests of models with a ``logging_config`` (none without it); ``drift``
        compares serving_default traffic with each version's reference profile (none without it)."""
        self.core = core
        self.limits = limits
        self.control = control or ModelControl()
        self.manager = core.manager
        self.runner = runner or Runner(threads, batcher)
        self.execution = Execution(self.runner, limits, method_name_check, tensor_content)
        self._metrics = metrics
        self._series: dict[tuple[str, ...], _Series] = {}
        self.request_log = request_log
        self.drift = drift

    # ---- shared plumbing -------------------------------------------------------------------------------
    def _call(self, api: str, spec: model_pb2.ModelSpec, signature: str = "") -> _Call:
        return _Call(self._metrics, self._series, api, spec.name, self.manager.is_known(spec.name), signature)

    def _acquire(self, spec: model_pb2.ModelSpec) -> ServableHandle:
        if not spec.name:
            raise InvalidArgument("Missing ModelSpec")
        version, label = spec_version(spec)
        return self.manager.acquire(spec.name, version, label)

    @staticmethod
    @contextlib.contextmanager
    def _counted(call: _Call) -> Iterator[None]:
        """Count the request with its final status; anything but a ``ServingError`` is mapped to one."""
        try:
            yield
        except ServingError as exc:
            call.done(exc.code.name)
            raise
        except Exception as exc:  # never let a raw exception reach an adapter
            error = serving_error_from_tf(exc)
            if error.code is grpc.StatusCode.INTERNAL:  # a bug, not the caller's mistake: keep its traceback
                log.exception("%s call on model %s failed", call.api, call.model)
            call.done(error.code.name)
            raise error from exc
        call.done("OK")

    @contextlib.asynccontextmanager
    async def _serving(
        self, call: _Call, spec: model_pb2.ModelSpec, check: Callable[[], object] = lambda: None
    ) -> AsyncIterator[Servable]:
        """The version ``spec`` resolves to, held (one handle) and counted until the block ends."""
        with self._counted(call):
            check()
            with self._acquire(spec) as handle:
                call.version = str(handle.servable.version)
                if call.requested in handle.servable.signature_defs:
                    call.signature = call.requested
                yield handle.servable

    def _log(self, servable: Servable, signature: str, build: RecordBuilder) -> None:
        """Log this successful call if its model logs requests and it is sampled (``build`` then runs on the
        log's writer thread: nothing is converted on the request path)."""
        if self.request_log is None:
            return
        entry = self.core.entry(servable.name)
        if entry is not None and entry.logging is not None and self.request_log.sampled(entry.logging):
            spec = resolved_spec(servable, signature)
            self.request_log.submit(entry.logging, servable.name, spec, build)

    # ---- predict ---------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def prediction(self, spec: model_pb2.ModelSpec) -> AsyncIterator[Prediction]:
        """A Predict on the version ``spec`` resolves to now, held until the block ends: the adapters parse
        their request against ``prediction.input_dtypes``, run it and read ``prediction.spec`` all on that
        one version. Counted in the metrics as one predict call (errors raised in the block included)."""
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        async with self._serving(self._call("predict", spec, signature_name), spec) as servable:
            prediction = self.execution.prediction(servable, signature_name)
            yield prediction
            if (ran := prediction.ran) is not None:
                self._log(servable, signature_name, lambda: predict_record(prediction.spec, *ran))
                if self.drift is not None and signature_name == DEFAULT_SIGNATURE:
                    self.drift.observe(servable.name, servable.version, servable.path, ran[0], ran[1])

    async def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        async with self.prediction(request.model_spec) as prediction:
            return await prediction.answer(request)

    # ---- classify / regress / multi-inference -----------------------------------------------------------
    async def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        spec = request.model_spec
        call = self._call("classify", spec, spec.signature_name or DEFAULT_SIGNATURE)
        async with self._serving(call, spec) as servable:
            response = await self.execution.classify(servable, request)
            self._log(servable, call.signature, _logged("classify", request, response))
            return response

    async def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        spec = request.model_spec
        call = self._call("regress", spec, spec.signature_name or DEFAULT_SIGNATURE)
        async with self._serving(call, spec) as servable:
            response = await self.execution.regress(servable, request)
            self._log(servable, call.signature, _logged("regress", request, response))
            return response

    async def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        call = self._call("multi_inference", first)
        # the tasks are checked before the model is looked up (TF Serving's order)
        async with self._serving(call, first, lambda: check_multi_inference(request)) as servable:
            response = await self.execution.multi_inference(servable, request)
            self._log(servable, "", _logged("multi_inference", request, response))
            return response

    # ---- metadata / status / config --------------------------------------------------------------------
    async def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        def check() -> None:
            if not request.metadata_field:
                raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise InvalidArgument(f"Metadata field {field} is not supported")

        spec = request.model_spec
        async with self._serving(self._call("metadata", spec), spec, check) as servable:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=resolved_spec(servable, ""))
            response.metadata["signature_def"].Pack(signature_map)
            return response

    async def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        with self._counted(self._call("status", spec)):
            if not spec.name:
                raise InvalidArgument("Missing model name in request.")
            version, label = spec_version(spec)
            resolved = self.manager.resolve_version(spec.name, version, label)
            response = get_model_status_pb2.GetModelStatusResponse()
            for record in self.manager.status(spec.name, resolved):
                item = response.model_version_status.add(version=record.version, state=int(record.state))
                if record.error is not None:
                    item.status.error_code = record.error.code.value[0]
                    item.status.error_message = record.error.message
            return response

    async def reload_config(
        self, request: model_management_pb2.ReloadConfigRequest
    ) -> model_management_pb2.ReloadConfigResponse:
        with self._counted(self._call("reload", model_pb2.ModelSpec())):
            try:
                entries: dict[str, ModelEntry] = model_entries(request.config, base_dir=None)
            except ConfigError as exc:
                raise InvalidArgument(str(exc)) from None
            self.control.check_entries(entries)
            await self.core.apply_config(entries)
            response = model_management_pb2.ReloadConfigResponse()
            response.status.error_code = 0
            return response

    def shutdown(self) -> None:
        self.runner.shutdown()
        if self.request_log is not None:
            self.request_log.close()
        if self.drift is not None:
            self.drift.close()


_LOGS = {
    "classify": ("classify_log", prediction_log_pb2.ClassifyLog),
    "regress": ("regress_log", prediction_log_pb2.RegressLog),
    "multi_inference": ("multi_inference_log", prediction_log_pb2.MultiInferenceLog),
}


def _logged(api: str, request: object, response: object) -> RecordBuilder:
    """The PredictionLog of a call answered with protos (built later, on the log's writer thread)."""
    field, message = _LOGS[api]
    return lambda: prediction_log_pb2.PredictionLog(**{field: message(request=request, response=response)})
