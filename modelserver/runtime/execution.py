"""Execution: TF Serving's PredictionService requests run on one loaded version, protocol-neutral (its
``RunPredict`` / ``RunClassify`` / ``RunRegress`` / ``RunMultiInference``, which are handed a loaded session
too). The data plane and warm-up both answer requests through here, so a warm-up record is replayed exactly
as a client's request would be.

Contract:
- Nothing here resolves a model spec: the caller passes the ``Servable`` it holds. The data plane holds it
  through one ``ServableHandle`` from resolution to reply, so one request sees one version whatever hot swaps
  happen meanwhile; warm-up passes the version being loaded, before it is available.
- ``Execution.runner`` is how a signature runs (``modelserver.runtime.runner``): the data plane's worker
  threads or batcher, or inline in the loader's thread for warm-up. Everything else - input, output and request-limit checks with TF Serving's
  messages, and the replies - is the same for both.
- Raises ``ServingError`` for anything the caller can fix (TensorFlow failures arrive as ``ServingError``
  from ``Servable.run``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from modelserver.errors import InvalidArgument
from modelserver.runtime.classify_regress import (
    CLASSIFY_METHOD,
    REGRESS_METHOD,
    classification_result,
    example_signature,
    regression_result,
    serialized_examples,
)
from modelserver.runtime.limits import DEFAULT_LIMITS, STRING_ELEMENT_BYTES, RequestBudget, RequestLimits
from modelserver.runtime.runner import Runner
from modelserver.runtime.servable import DEFAULT_SIGNATURE, Servable, check_inputs
from modelserver.runtime.tensors import to_ndarray, to_tensor_proto
from tfs_protos.tensorflow.core.framework import tensor_pb2
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

__all__ = [
    "Execution",
    "Prediction",
    "check_multi_inference",
    "resolved_spec",
    "spec_version",
]

Arrays = dict[str, np.ndarray]
ExampleResult: TypeAlias = classification_pb2.ClassificationResult | regression_pb2.RegressionResult


def spec_version(spec: model_pb2.ModelSpec) -> tuple[int | None, str | None]:
    """(version, label) a spec names; (None, None) for the latest."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return int(spec.version.value), None
    if choice == "version_label":
        return None, str(spec.version_label)
    return None, None


def resolved_spec(servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
    """The reply's ``model_spec``: the version that answered, by number."""
    return _fill_spec(model_pb2.ModelSpec(), servable, signature_name)


def _fill_spec(spec: model_pb2.ModelSpec, servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
    spec.name = servable.name
    spec.signature_name = signature_name
    spec.version.value = servable.version
    return spec


def check_multi_inference(request: inference_pb2.MultiInferenceRequest) -> model_pb2.ModelSpec:
    """TF Serving's checks of a MultiInferenceRequest's tasks; the model spec they all share."""
    if not request.tasks:
        raise InvalidArgument("Expected at least one task")
    first = request.tasks[0].model_spec
    signatures: set[str] = set()
    for task in request.tasks:
        spec = task.model_spec
        if spec.name != first.name:
            raise InvalidArgument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        if spec_version(spec) != spec_version(first):
            raise InvalidArgument("ModelSpec version and version_label must be the same for all tasks.")
        key = spec.signature_name or DEFAULT_SIGNATURE
        if key in signatures:
            raise InvalidArgument(f"Duplicate evaluation of signature: {key}")
        signatures.add(key)
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise InvalidArgument(f"Unsupported signature method_name: {task.method_name}")
    return first


class Prediction:
    """One Predict request bound to the version that answers it and to one of its signatures.

    Built once the version is held (an unknown signature is InvalidArgument here); the adapters read
    ``input_dtypes`` to parse their request against this very signature, then ``run`` or ``answer``. Each
    prediction carries its own request budget (``limits``): the inputs of one request are summed."""

    def __init__(self, execution: Execution, servable: Servable, signature_name: str) -> None:
        self.servable = servable
        self.signature_name = signature_name or DEFAULT_SIGNATURE
        self.signature = servable.signature(self.signature_name)
        self._execution = execution
        self._budget = RequestBudget(execution.limits)
        # (inputs, outputs, output_filter) of the last run: what a request log records (the arrays, no copy)
        self.ran: tuple[Mapping[str, np.ndarray], Arrays, Sequence[str]] | None = None

    @property
    def spec(self) -> model_pb2.ModelSpec:
        return resolved_spec(self.servable, self.signature_name)

    @property
    def input_dtypes(self) -> dict[str, int]:
        """``{input name: DataType enum}`` of the signature (TF Serving parses JSON against it too)."""
        return {name: int(info.dtype) for name, info in self.signature.inputs.items()}

    async def run(self, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()) -> Arrays:
        """Run on arrays an adapter built (REST JSON, OIP tensors); they count against the request limits."""
        for name, array in inputs.items():
            self._budget.spend(
                name, array.shape, array.itemsize if array.dtype != object else STRING_ELEMENT_BYTES
            )
        return await self._run_checked(inputs, output_filter)

    async def answer(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """A PredictRequest's reply: its tensors converted within the request limits, run, converted back."""
        inputs = self.from_protos(request.inputs)
        outputs = await self._run_checked(inputs, tuple(request.output_filter))
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, self.servable, self.signature_name)
        as_content = self._execution.tensor_content
        for name, array in outputs.items():  # filled in place (building and copying cost ~10x more)
            to_tensor_proto(array, as_content=as_content, into=response.outputs[name])
        return response

    def from_protos(self, protos: Mapping[str, tensor_pb2.TensorProto]) -> Arrays:
        """Request tensors as numpy, each checked against the request budget before it is allocated."""
        return {name: to_ndarray(proto, name, self._budget) for name, proto in protos.items()}

    async def _run_checked(self, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str]) -> Arrays:
        check_inputs(
            self.signature_name, self.signature, inputs, self.servable.guarded_shapes(self.signature_name)
        )
        self.servable.check_output_filter(self.signature_name, output_filter)
        outputs = await self._execution.runner.run(
            self.servable, self.signature_name, inputs, tuple(output_filter)
        )
        self.ran = (inputs, outputs, output_filter)
        return outputs


@dataclass(frozen=True)
class Execution:
    """How requests run here: through ``runner``, within ``limits``, with or without TF Serving's
    ``--enable_signature_method_name_check``."""

    runner: Runner
    limits: RequestLimits = DEFAULT_LIMITS
    method_name_check: bool = False
    tensor_content: bool = False  # --enable_serialization_as_tensor_content: Predict replies as raw bytes

    def prediction(self, servable: Servable, signature_name: str) -> Prediction:
        return Prediction(self, servable, signature_name)

    async def predict(
        self, servable: Servable, request: predict_pb2.PredictRequest
    ) -> predict_pb2.PredictResponse:
        return await self.prediction(servable, request.model_spec.signature_name).answer(request)

    async def classify(
        self, servable: Servable, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        signature_name = request.model_spec.signature_name
        result = await self._examples(servable, signature_name, CLASSIFY_METHOD, request.input)
        return classification_pb2.ClassificationResponse(
            model_spec=resolved_spec(servable, signature_name or DEFAULT_SIGNATURE), result=result
        )

    async def regress(
        self, servable: Servable, request: regression_pb2.RegressionRequest
    ) -> regression_pb2.RegressionResponse:
        signature_name = request.model_spec.signature_name
        result = await self._examples(servable, signature_name, REGRESS_METHOD, request.input)
        return regression_pb2.RegressionResponse(
            model_spec=resolved_spec(servable, signature_name or DEFAULT_SIGNATURE), result=result
        )

    async def multi_inference(
        self, servable: Servable, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        check_multi_inference(request)
        results = await asyncio.gather(
            *(
                self._examples(servable, task.model_spec.signature_name, task.method_name, request.input)
                for task in request.tasks
            )
        )
        response = inference_pb2.MultiInferenceResponse()
        for task, result in zip(request.tasks, results, strict=True):
            item = response.results.add()
            item.model_spec.CopyFrom(
                resolved_spec(servable, task.model_spec.signature_name or DEFAULT_SIGNATURE)
            )
            if task.method_name == CLASSIFY_METHOD:
                item.classification_result.CopyFrom(result)
            else:
                item.regression_result.CopyFrom(result)
        return response

    async def _examples(
        self, servable: Servable, signature_name: str, method: str, request_input: input_pb2.Input
    ) -> ExampleResult:
        signature = example_signature(
            servable, signature_name, method, method_name_check=self.method_name_check
        )
        examples = serialized_examples(request_input, self.limits)
        outputs = await self.runner.run(
            servable, signature.key, {signature.input_name: examples}, signature.outputs
        )
        if method == CLASSIFY_METHOD:
            return classification_result(outputs, len(examples))
        return regression_result(outputs, len(examples))
