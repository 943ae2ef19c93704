"""gRPC adapters: TF Serving's ``PredictionService`` and ``ModelService`` over ``grpc.aio``, plus the standard
health service. They only delegate to the ``DataPlane``; a ``ServingError`` becomes the call's status
(code and TF Serving's message), and nothing else ever reaches a client as a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from modelserver.dataplane import DataPlane
from modelserver.errors import ServingError
from tfs_protos.tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ModelServiceAdapter",
    "PredictionServiceAdapter",
    "add_services",
    "server_options",
]

log = logging.getLogger("modelserver.grpc")

# TF Serving lifts gRPC's 4 MB default to the protobuf limit (issue #288): 2 GB - 1.
MAX_MESSAGE_BYTES = 2**31 - 1
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"

Reply = TypeVar("Reply")


def server_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ]


async def _answer(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[Reply]]) -> Reply:
    try:
        return await call()
    except ServingError as exc:
        await context.abort(exc.code, exc.message)
    except Exception:  # the data plane maps everything; this is the last line of defence
        log.exception("unexpected error in a gRPC call")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    raise AssertionError("unreachable")  # context.abort always raises


class PredictionServiceAdapter(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, dataplane: DataPlane) -> None:
        self._dp = dataplane

    async def Predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await _answer(context, lambda: self._dp.predict(request))

    async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await _answer(context, lambda: self._dp.classify(request))

    async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await _answer(context, lambda: self._dp.regress(request))

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await _answer(context, lambda: self._dp.multi_inference(request))

    async def GetModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await _answer(context, lambda: self._dp.get_model_metadata(request))


class ModelServiceAdapter(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, dataplane: DataPlane) -> None:
        self._dp = dataplane

    async def GetModelStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await _answer(context, lambda: self._dp.get_model_status(request))

    async def HandleReloadConfigRequest(  # noqa: N802
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        return await _answer(context, lambda: self._dp.reload_config(request))


def add_services(
    server: grpc.aio.Server, dataplane: DataPlane, *, healthcheck: bool
) -> health.aio.HealthServicer | None:
    """Register the services; with ``healthcheck`` also ``grpc.health.v1.Health`` (NOT_SERVING until the
    caller marks it SERVING)."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServiceAdapter(dataplane), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServiceAdapter(dataplane), server)
    if not healthcheck:
        return None
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def set_health(servicer: health.aio.HealthServicer | None, serving: bool) -> None:
    if servicer is None:
        return
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for service in ("", PREDICTION_SERVICE, MODEL_SERVICE):
        await servicer.set(service, status)
