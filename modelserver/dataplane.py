"""DataPlane: the protocol-neutral heart of the modelserver. The gRPC and REST adapters only convert and
delegate to it; it resolves model specs to servable handles, validates requests, runs signatures (through the
batcher when ``--enable_batching``), builds replies, and counts every request in the metrics - so both
protocols behave and are measured identically.

Contract:
- Every method raises ``ServingError`` (TF Serving's codes and messages) for anything the caller can fix, or
  when nothing can serve the request; never another exception.
- A request holds a handle on the version that answers it from resolution to reply (hot swaps never change
  the version mid-request), and the reply's ``model_spec`` names that version.
- TensorFlow runs in worker threads; the event loop only converts and schedules.
- ``predict_arrays`` is the REST fast path: numpy in, numpy out (strings are object arrays of bytes), no
  TensorProto round trip. ``input_dtypes`` tells REST how to parse JSON: ``{input: DataType enum}`` of the
  signature in the version the spec resolves to now (TF Serving parses JSON against the signature too).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from modelserver.batching import Batcher
from modelserver.config import ModelEntry, model_entries
from modelserver.control import ModelControl
from modelserver.core import ServerCore
from modelserver.errors import ConfigError, InvalidArgument, ServingError
from modelserver.handle import ServableHandle
from modelserver.inference import (
    CLASSIFY_METHOD,
    REGRESS_METHOD,
    classification_result,
    example_signature,
    regression_result,
    serialized_examples,
)
from modelserver.limits import DEFAULT_LIMITS, RequestBudget, RequestLimits, check_deadline
from modelserver.metrics import METRICS, Metrics
from modelserver.servable import DEFAULT_SIGNATURE, Servable, check_inputs, serving_error_from_tf
from modelserver.tensors import to_ndarray, to_tensor_proto
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

__all__ = ["PROTOCOL", "DataPlane"]

# Set by each adapter ("grpc" / "rest") around its calls; a metrics label.
PROTOCOL: contextvars.ContextVar[str] = contextvars.ContextVar("modelserver_protocol", default="grpc")


def _spec_version(spec: model_pb2.ModelSpec) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return int(spec.version.value), None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


class _Call:
    """Times one request and counts it with its final labels."""

    __slots__ = ("api", "metrics", "model", "signature", "started", "version")

    def __init__(self, metrics: Metrics, api: str, model: str, known: bool, signature: str = "") -> None:
        self.metrics, self.api, self.signature = metrics, api, signature
        self.model = model if known else "_unknown"  # bounded label cardinality
        self.version = ""
        self.started = time.perf_counter()

    def done(self, status: str) -> None:
        labels = (self.model, self.version, self.signature, self.api, PROTOCOL.get(), status)
        self.metrics.requests.labels(*labels).inc()
        self.metrics.request_latency.labels(*labels).observe(time.perf_counter() - self.started)


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
    ) -> None:
        self.core = core
        self.limits = limits
        self.control = control or ModelControl()
        self.manager = core.manager
        self.batcher = batcher
        self._method_name_check = method_name_check
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")

    # ---- shared plumbing -------------------------------------------------------------------------------
    def _call(self, api: str, spec: model_pb2.ModelSpec, signature: str = "") -> _Call:
        return _Call(self._metrics, api, spec.name, self.manager.is_known(spec.name), signature)

    def _acquire(self, spec: model_pb2.ModelSpec) -> ServableHandle:
        if not spec.name:
            raise InvalidArgument("Missing ModelSpec")
        version, label = _spec_version(spec)
        return self.manager.acquire(spec.name, version, label)

    async def _run(
        self,
        servable: Servable,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str],
    ) -> dict[str, np.ndarray]:
        check_deadline()
        if self.batcher is not None and inputs:
            return await self.batcher.run(servable, signature, inputs, output_filter)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, servable.run, signature, inputs, output_filter)

    @staticmethod
    def _resolved(servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name)
        spec.version.value = servable.version
        return spec

    async def _counted(self, call: _Call, coro: Any) -> Any:
        try:
            result = await coro
        except ServingError as exc:
            call.done(exc.code.name)
            raise
        except Exception as exc:  # never let a raw exception reach an adapter
            error = serving_error_from_tf(exc)
            call.done(error.code.name)
            raise error from exc
        call.done("OK")
        return result

    # ---- predict ---------------------------------------------------------------------------------------
    async def _predict(
        self,
        spec: model_pb2.ModelSpec,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str],
        call: _Call,
    ) -> tuple[model_pb2.ModelSpec, dict[str, np.ndarray]]:
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        with self._acquire(spec) as handle:
            servable = handle.servable
            call.version = str(servable.version)
            signature = servable.signature(signature_name)
            check_inputs(signature_name, signature, inputs)
            servable.check_output_filter(signature_name, output_filter)
            outputs = await self._run(servable, signature_name, inputs, tuple(output_filter))
            return self._resolved(servable, signature_name), outputs

    async def predict_arrays(
        self, spec: model_pb2.ModelSpec, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> tuple[model_pb2.ModelSpec, dict[str, np.ndarray]]:
        call = self._call("predict", spec, spec.signature_name or DEFAULT_SIGNATURE)

        async def run() -> tuple[model_pb2.ModelSpec, dict[str, np.ndarray]]:
            budget = RequestBudget(self.limits)
            for name, array in inputs.items():
                budget.spend(name, array.shape, array.itemsize if array.dtype != object else 0)
            return await self._predict(spec, inputs, output_filter, call)

        result: tuple[model_pb2.ModelSpec, dict[str, np.ndarray]] = await self._counted(call, run())
        return result

    async def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        call = self._call("predict", spec, spec.signature_name or DEFAULT_SIGNATURE)

        async def run() -> predict_pb2.PredictResponse:
            budget = RequestBudget(self.limits)
            inputs = {name: to_ndarray(proto, name, budget) for name, proto in request.inputs.items()}
            resolved, outputs = await self._predict(spec, inputs, tuple(request.output_filter), call)
            response = predict_pb2.PredictResponse(model_spec=resolved)
            for name, array in outputs.items():
                response.outputs[name].CopyFrom(to_tensor_proto(array))
            return response

        response: predict_pb2.PredictResponse = await self._counted(call, run())
        return response

    async def input_dtypes(self, spec: model_pb2.ModelSpec) -> dict[str, int]:
        """``{input name: DataType enum}`` of the spec's signature in the version it resolves to now."""
        with self._acquire(spec) as handle:
            signature = handle.servable.signature(spec.signature_name or DEFAULT_SIGNATURE)
            return {name: info.dtype for name, info in signature.inputs.items()}

    # ---- classify / regress / multi-inference -----------------------------------------------------------
    async def _examples(
        self, servable: Servable, signature_name: str, method: str, request_input: Any
    ) -> Any:
        signature = example_signature(
            servable, signature_name, method, method_name_check=self._method_name_check
        )
        examples = serialized_examples(request_input)
        outputs = await self._run(
            servable, signature.key, {signature.input_name: examples}, signature.outputs
        )
        if method == CLASSIFY_METHOD:
            return classification_result(outputs, len(examples))
        return regression_result(outputs, len(examples))

    async def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        spec = request.model_spec
        call = self._call("classify", spec, spec.signature_name or DEFAULT_SIGNATURE)

        async def run() -> classification_pb2.ClassificationResponse:
            with self._acquire(spec) as handle:
                call.version = str(handle.servable.version)
                result = await self._examples(
                    handle.servable, spec.signature_name, CLASSIFY_METHOD, request.input
                )
                resolved = self._resolved(handle.servable, spec.signature_name or DEFAULT_SIGNATURE)
                return classification_pb2.ClassificationResponse(model_spec=resolved, result=result)

        response: classification_pb2.ClassificationResponse = await self._counted(call, run())
        return response

    async def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        spec = request.model_spec
        call = self._call("regress", spec, spec.signature_name or DEFAULT_SIGNATURE)

        async def run() -> regression_pb2.RegressionResponse:
            with self._acquire(spec) as handle:
                call.version = str(handle.servable.version)
                result = await self._examples(
                    handle.servable, spec.signature_name, REGRESS_METHOD, request.input
                )
                resolved = self._resolved(handle.servable, spec.signature_name or DEFAULT_SIGNATURE)
                return regression_pb2.RegressionResponse(model_spec=resolved, result=result)

        response: regression_pb2.RegressionResponse = await self._counted(call, run())
        return response

    async def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        call = self._call("multi_inference", first)

        async def run() -> inference_pb2.MultiInferenceResponse:
            if not request.tasks:
                raise InvalidArgument("Expected at least one task")
            signatures: set[str] = set()
            for task in request.tasks:
                spec = task.model_spec
                if spec.name != first.name:
                    raise InvalidArgument(
                        "All ModelSpecs in a MultiInferenceRequest must access the same model name."
                    )
                if _spec_version(spec) != _spec_version(first):
                    raise InvalidArgument(
                        "ModelSpec version and version_label must be the same for all tasks."
                    )
                key = spec.signature_name or DEFAULT_SIGNATURE
                if key in signatures:
                    raise InvalidArgument(f"Duplicate evaluation of signature: {key}")
                signatures.add(key)
                if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                    raise InvalidArgument(f"Unsupported signature method_name: {task.method_name}")
            response = inference_pb2.MultiInferenceResponse()
            with self._acquire(first) as handle:
                call.version = str(handle.servable.version)
                results = await asyncio.gather(
                    *(
                        self._examples(
                            handle.servable, t.model_spec.signature_name, t.method_name, request.input
                        )
                        for t in request.tasks
                    )
                )
                for task, result in zip(request.tasks, results, strict=True):
                    item = response.results.add()
                    item.model_spec.CopyFrom(
                        self._resolved(handle.servable, task.model_spec.signature_name or DEFAULT_SIGNATURE)
                    )
                    if task.method_name == CLASSIFY_METHOD:
                        item.classification_result.CopyFrom(result)
                    else:
                        item.regression_result.CopyFrom(result)
            return response

        response: inference_pb2.MultiInferenceResponse = await self._counted(call, run())
        return response

    # ---- metadata / status / config --------------------------------------------------------------------
    async def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        spec = request.model_spec
        call = self._call("metadata", spec)

        async def run() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if not request.metadata_field:
                raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise InvalidArgument(f"Metadata field {field} is not supported")
            with self._acquire(spec) as handle:
                call.version = str(handle.servable.version)
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                for key, signature in handle.servable.signature_defs.items():
                    signature_map.signature_def[key].CopyFrom(signature)
                response = get_model_metadata_pb2.GetModelMetadataResponse(
                    model_spec=self._resolved(handle.servable, "")
                )
                response.metadata["signature_def"].Pack(signature_map)
                return response

        response: get_model_metadata_pb2.GetModelMetadataResponse = await self._counted(call, run())
        return response

    async def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        call = self._call("status", spec)

        async def run() -> get_model_status_pb2.GetModelStatusResponse:
            if not spec.name:
                raise InvalidArgument("Missing model name in request.")
            version, label = _spec_version(spec)
            version = self.manager.resolve_version(spec.name, version, label)
            response = get_model_status_pb2.GetModelStatusResponse()
            for record in self.manager.status(spec.name, version):
                item = response.model_version_status.add(version=record.version, state=int(record.state))
                if record.error is not None:
                    item.status.error_code = record.error.code.value[0]
                    item.status.error_message = record.error.message
            return response

        response: get_model_status_pb2.GetModelStatusResponse = await self._counted(call, run())
        return response

    async def reload_config(
        self, request: model_management_pb2.ReloadConfigRequest
    ) -> model_management_pb2.ReloadConfigResponse:
        call = self._call("reload", model_pb2.ModelSpec())

        async def run() -> model_management_pb2.ReloadConfigResponse:
            try:
                entries: dict[str, ModelEntry] = model_entries(request.config, base_dir=None)
            except ConfigError as exc:
                raise InvalidArgument(str(exc)) from None
            self.control.check_entries(entries)
            await self.core.apply_config(entries)
            response = model_management_pb2.ReloadConfigResponse()
            response.status.error_code = 0
            return response

        response: model_management_pb2.ReloadConfigResponse = await self._counted(call, run())
        return response

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
