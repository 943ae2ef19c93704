"""An in-process fake TF Serving model server for gateway unit tests: PredictionService + ModelService on a
free loopback port, built from the gateway's vendored protos (no TensorFlow), answering in milliseconds.

    with FakeModelServer() as server:                   # serves "half" (y = 0.5 x + 2), version 1
        server.fail("Predict", grpc.StatusCode.UNAVAILABLE, times=2)   # the next two Predicts fail
        gate = server.hold("Predict")                   # Predicts wait until gate.set() (deadline tests)
        server.calls["GetModelMetadata"]                # how often each method was called

Every model is TF Serving's half_plus_two: ``serving_default`` takes ``x`` float32 [-1] and returns ``y``;
no ``contract`` signature, so the gateway derives its contract. ``versions[name]`` maps each version to its
state name (``AVAILABLE``, ``END``...); Predict without a version answers from the highest AVAILABLE one.
HandleReloadConfigRequest records the config it was sent (``reloads``). Use a real modelserver process for
anything about TensorFlow itself: this fake is for the gateway's own behaviour (retries, deadlines, caches,
rollout, error mapping).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from types import TracebackType
from typing import TypeVar

import grpc

from devtools.procs import LOOPBACK
from gateway.upstream.tensors import to_list
from tfs_protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2
from tfs_protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["FakeModelServer"]

Reply = TypeVar("Reply")
STATES = get_model_status_pb2.ModelVersionStatus.State


def _vector_info(name: str) -> meta_graph_pb2.TensorInfo:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1)])
    return meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=types_pb2.DT_FLOAT, tensor_shape=shape)


def half_plus_two_signatures() -> get_model_metadata_pb2.SignatureDefMap:
    signatures = get_model_metadata_pb2.SignatureDefMap()
    default = signatures.signature_def["serving_default"]
    default.method_name = "tensorflow/serving/predict"
    default.inputs["x"].CopyFrom(_vector_info("x"))
    default.outputs["y"].CopyFrom(_vector_info("y"))
    return signatures


class FakeModelServer:
    def __init__(self, versions: dict[str, dict[int, str]] | None = None) -> None:
        self.versions = versions if versions is not None else {"half": {1: "AVAILABLE"}}
        self.calls: Counter[str] = Counter()
        self.reloads: list[model_server_config_pb2.ModelServerConfig] = []
        self._failures: dict[str, list[tuple[grpc.StatusCode, str]]] = {}
        self._holds: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Prediction(self), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_Models(self), self._server)
        self.port = self._server.add_insecure_port(f"{LOOPBACK}:0")

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    # ---- script ----------------------------------------------------------------------------------------
    def fail(
        self, method: str, code: grpc.StatusCode, details: str = "scripted failure", times: int = 1
    ) -> None:
        """The next ``times`` calls of ``method`` fail with ``code``."""
        with self._lock:
            self._failures.setdefault(method, []).extend([(code, details)] * times)

    def hold(self, method: str) -> threading.Event:
        """Calls of ``method`` wait until the returned event is set (a held call outlives any deadline)."""
        gate = self._holds[method] = threading.Event()
        return gate

    def release_all(self) -> None:
        for gate in self._holds.values():
            gate.set()

    # ---- serving ---------------------------------------------------------------------------------------
    def serve(self, method: str, context: grpc.ServicerContext, answer: Callable[[], Reply]) -> Reply:
        with self._lock:
            self.calls[method] += 1
            failures = self._failures.get(method)
            failure = failures.pop(0) if failures else None
        gate = self._holds.get(method)
        if gate is not None:
            gate.wait(60)  # hang guard only: the test releases it
        if failure is not None:
            context.abort(*failure)
        return answer()

    def resolve(self, spec_name: str, version: int | None, context: grpc.ServicerContext) -> int:
        served = self.versions.get(spec_name, {})
        available = sorted(v for v, state in served.items() if state == "AVAILABLE")
        if version is None:
            if not available:
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec_name})"
                )
            return available[-1]
        if version not in available:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({spec_name}, {version})"
            )
        return version

    def start(self) -> FakeModelServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self.release_all()
        self._server.stop(grace=None)

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _version(spec: object) -> int | None:
    return spec.version.value if spec.HasField("version") else None  # type: ignore[attr-defined]


class _Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, fake: FakeModelServer) -> None:
        self.fake = fake

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        def answer() -> predict_pb2.PredictResponse:
            version = self.fake.resolve(request.model_spec.name, _version(request.model_spec), context)
            if "x" not in request.inputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input size does not match signature: want x")
            xs = [float(x) for x in to_list(request.inputs["x"])]  # type: ignore[arg-type]
            reply = predict_pb2.PredictResponse()
            reply.model_spec.name = request.model_spec.name
            reply.model_spec.version.value = version
            reply.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
            y = reply.outputs["y"]
            y.CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5 * x + 2 for x in xs]))
            y.tensor_shape.dim.add(size=len(xs))
            return reply

        return self.fake.serve("Predict", context, answer)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        def answer() -> get_model_metadata_pb2.GetModelMetadataResponse:
            version = self.fake.resolve(request.model_spec.name, _version(request.model_spec), context)
            reply = get_model_metadata_pb2.GetModelMetadataResponse()
            reply.model_spec.name = request.model_spec.name
            reply.model_spec.version.value = version
            reply.metadata["signature_def"].Pack(half_plus_two_signatures())
            return reply

        return self.fake.serve("GetModelMetadata", context, answer)


class _Models(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, fake: FakeModelServer) -> None:
        self.fake = fake

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        def answer() -> get_model_status_pb2.GetModelStatusResponse:
            name = request.model_spec.name
            served = self.fake.versions.get(name)
            if not served:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
            reply = get_model_status_pb2.GetModelStatusResponse()
            for version in sorted(served, reverse=True):
                reply.model_version_status.add(version=version, state=STATES.Value(served[version]))
            return reply

        return self.fake.serve("GetModelStatus", context, answer)

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        def answer() -> model_management_pb2.ReloadConfigResponse:
            self.fake.reloads.append(request.config)
            return model_management_pb2.ReloadConfigResponse()

        return self.fake.serve("HandleReloadConfigRequest", context, answer)
