"""gRPC adapters: TF Serving's ``PredictionService`` and ``ModelService`` over ``grpc.aio``, plus the standard
health service. They only delegate to the ``DataPlane``; a ``ServingError`` becomes the call's status
(code and TF Serving's message), and nothing else ever reaches a client as a traceback.

Servicer methods are annotated with the generated message classes. The OIP messages
(``oip_protos``) have committed type stubs (``protoc --pyi_out``, scripts/vendor_oip_protos.py),
so mypy checks their fields and constructors. TF Serving's (``tfs_protos``, copied byte for byte from the
pinned TensorFlow wheels, which ship no stubs) are not followed by mypy (pyproject.toml): to mypy they are
``Any``, and their annotations document the contract. The servicers do not subclass the generated
``*Servicer`` bases (untyped, and their default methods answer UNIMPLEMENTED silently); ``add_servicer``
checks at start-up that every method of the service is implemented.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from guard.logs import RateLimitedLog
from modelserver.dataplane import DataPlane
from modelserver.errors import ServingError
from modelserver.observe import tracing
from modelserver.runtime.limits import DEADLINE
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
    regression_pb2,
)

__all__ = [
    "MAX_CONCURRENT_RPCS",
    "MAX_CONCURRENT_STREAMS",
    "MAX_MESSAGE_BYTES",
    "MAX_OPEN_STREAMS",
    "MAX_WAITING_CALLS",
    "Context",
    "ModelServiceAdapter",
    "PredictionServiceAdapter",
    "Reload",
    "add_servicer",
    "add_services",
    "answer",
    "server_options",
]

log = logging.getLogger("modelserver.grpc")
client_log = RateLimitedLog(log)

# TF Serving lifts gRPC's 4 MB default to the protobuf limit (issue #288): 2 GB - 1.
MAX_MESSAGE_BYTES = 2**31 - 1
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
# What an authorized HandleReloadConfigRequest runs.
Reload: TypeAlias = Callable[
    [model_management_pb2.ReloadConfigRequest], Awaitable[model_management_pb2.ReloadConfigResponse]
]

Reply = TypeVar("Reply")
# grpc ships no type information either; one name for the context every servicer method receives.
Context: TypeAlias = grpc.aio.ServicerContext


# HTTP/2 bounds per connection, so that one abusive connection cannot take the server from its neighbours
# (issue 25: a rapid-reset loop and tens of thousands of message-less streams on one connection cancelled
# the calls of every other client). Names are grpc-core's channel arguments (grpc_types.h).
# SETTINGS_MAX_CONCURRENT_STREAMS (grpc-core's default is unbounded). grpc-core keeps ~6-14 KiB per open
# stream whatever Python does with the call, so connections x this is what a flood of idle streams over many
# connections holds; MAX_OPEN_STREAMS below bounds the product. Not lower: a grpcio client with more calls at
# once on one channel than this gets some UNAVAILABLE (REFUSED_STREAM, see OVERLOAD_PROTECTION): measured with
# 256 calls at once on one channel, 20 rounds, aio and sync clients: 16 here 19-25 % of the calls, 64 here 5-9 %;
# as many calls as this: none. The bench's h2load uses 8 per connection, the gateway queues past it.
MAX_CONCURRENT_STREAMS = 64
# grpc-core's "grpc.http.overload_protection" (its default, on): a stream counts against MAX_CONCURRENT_STREAMS
# until it is deallocated - for grpc.aio, after Python lets go of the call, later than the client sees the
# call end - so a client that keeps more calls in flight than the limit is refused now and then. Off, such a
# client is never refused (it queues), but a rapid reset is not bounded any more: each reset stream becomes a
# call grpc-core keeps until Python takes it. Measured off, 20,000 HEADERS + RST_STREAM: +113/+121 MiB kept,
# 2 neighbour calls CANCELLED (pending calls 5,000/10,000), or +28/+42 MiB and 6-18 neighbour calls CANCELLED
# (1,000/2,000); on: +4 MiB, 0 neighbour errors. So it stays on.
OVERLOAD_PROTECTION = 1
# Open streams the gRPC port may hold in all: its connections are capped at this / MAX_CONCURRENT_STREAMS (64),
# whatever --max_connections_per_port allows. Measured, the idle stream flood (100 message-less streams on each
# connection, RssAnon of the server): 256 connections allowed (16,384 streams) +106/+144/+164 MiB at peak and
# 1-4 neighbour calls CANCELLED in 2 of 3 runs; 120 x 64 (7,680) +73..+122 MiB; 64 x 64 and 256 x 16 (4,096)
# +47/+53 and +11..+48 MiB, 0 neighbour errors. A connection cap lets that many idle clients lock new ones out
# until the idle timeout (TF Serving has no cap; its limit is the process's open files): an operator with more
# direct clients raises it by --grpc_channel_arguments=grpc.max_allowed_incoming_connections=N, about
# 64 x 14 KiB = 0.9 MiB more per connection at worst.
MAX_OPEN_STREAMS = 4_096
HANDSHAKE_TIMEOUT_MS = 10_000  # a TCP connection that never sends the HTTP/2 preface is closed
MAX_CONNECTION_IDLE_MS = 5 * 60_000  # a connection with no call for that long gets GOAWAY (clients reconnect)
# Calls held at once by the whole server (grpc.aio answers RESOURCE_EXHAUSTED past it): a stream that never
# sends its message costs ~20 KiB, so connections x streams must not be the only bound. Measured: 12,000
# message-less streams on 120 connections held +202 MiB with 10,000 here, +92 MiB with 2,000 (10,000 of
# them RESOURCE_EXHAUSTED at once). A gateway's channels queue calls past MAX_CONCURRENT_STREAMS each.
MAX_CONCURRENT_RPCS = 2_000
# Calls waiting for their request message at once (modelserver.protocols.admission): one more ends the
# oldest. A waiting call holds ~20-40 KiB; a legitimate client's message follows its HEADERS at once.
MAX_WAITING_CALLS = 500
# Calls grpc-core holds before the event loop has taken them (grpc.server.max_pending_requests and its hard
# limit; grpc-core's defaults are 1,000 and 3,000): past the first it refuses new calls at random, a
# neighbour's included, and a burst of message-less streams outruns the loop. Measured with 12,000 idle
# streams on 120 connections (one run each unless said): 1,000/3,000 cancelled 1-4 neighbour calls (2 runs),
# 2,000/5,000 3, 3,000/6,000 5, 5,000/10,000 none (3 runs, worst 1.7-3.1 s), 10,000/20,000 none (worst 5 s).
# RssAnon at peak moved between +60 and +138 MiB whatever the setting.
MAX_PENDING_CALLS = (5_000, 10_000)


def server_options(
    max_receive_bytes: int = MAX_MESSAGE_BYTES, *, reuse_port: bool = False, max_connections: int = 0
) -> list[tuple[str, Any]]:
    """``max_receive_bytes`` (``--max_request_bytes``): gRPC refuses a larger message (RESOURCE_EXHAUSTED)
    from its length prefix, before it is parsed. ``reuse_port``: SO_REUSEPORT, for workers sharing the port
    (``--num_workers``); off otherwise, so a second server on a port in use fails at start.
    ``max_connections`` (0 = no bound): connections past it are closed as soon as they are accepted, so a
    flood cannot take the descriptors the server needs (``guard.descriptors.connection_budget``). Every
    connection also gets at most ``MAX_CONCURRENT_STREAMS`` streams (grpc-core refuses more with
    RST_STREAM REFUSED_STREAM, counting streams still being torn down: ``OVERLOAD_PROTECTION``), a handshake deadline
    and an idle timeout. A rapid-reset loop gets no GOAWAY: grpc-core (1.85) has no limit on RST_STREAMs
    received; its mitigations are per stream (that refusal, ``grpc.http2.max_requests_per_read``: 32 new
    streams per read, a 100-1000 ms tarpit on refused streams, ``grpc.http2.ping_on_rst_stream_percent``),
    and a reset stream never reaches Python (issue 25: 20,000 resets cost the server ~0.5 s of CPU)."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", max_receive_bytes or MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
        ("grpc.http.overload_protection", OVERLOAD_PROTECTION),
        ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
        ("grpc.max_connection_idle_ms", MAX_CONNECTION_IDLE_MS),
        ("grpc.server.max_pending_requests", MAX_PENDING_CALLS[0]),
        ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS[1]),
    ]
    if max_connections > 0:
        options.append(("grpc.max_allowed_incoming_connections", max_connections))
    return options


class Undecodable:
    """A request message that did not parse (grpc would log a traceback and answer UNKNOWN); the adapters
    receive it in place of the message and ``answer`` turns it into INVALID_ARGUMENT."""

    def __init__(self, type_name: str, error: DecodeError) -> None:
        self.type_name, self.error = type_name, error


def _tolerant(message_class: type[Message]) -> Callable[[bytes], object]:
    def deserialize(raw: bytes) -> object:
        try:
            return message_class.FromString(raw)
        except DecodeError as exc:
            return Undecodable(message_class.DESCRIPTOR.full_name, exc)

    return deserialize


def add_servicer(
    server: grpc.aio.Server, file_descriptor: FileDescriptor, service: str, servicer: object
) -> None:
    """Register ``servicer`` like the generated ``add_*_to_server``, but with request deserializers that
    never raise: a corrupt message reaches the adapter, which answers INVALID_ARGUMENT. Every method of the
    service must be implemented (AttributeError otherwise, at start-up)."""
    handlers = {}
    for method in file_descriptor.services_by_name[service].methods:
        if not callable(getattr(servicer, method.name, None)):
            raise AttributeError(f"{type(servicer).__name__} does not implement {service}.{method.name}")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(request_class),
            response_serializer=response_class.SerializeToString,
        )
    full_name = file_descriptor.services_by_name[service].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(full_name, handlers),))


async def answer(context: Context, request: object, call: Callable[[], Awaitable[Reply]]) -> Reply:
    """Run ``call`` for one RPC: an undecodable request is INVALID_ARGUMENT, the call's deadline bounds the
    work (``limits.DEADLINE``), a ``ServingError`` becomes the status, anything else INTERNAL (logged)."""
    if isinstance(request, Undecodable):
        client_log.warning("refused an undecodable %s: %s", request.type_name, request.error)
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid {request.type_name} message ({request.error}); send a serialized "
            f"{request.type_name.rsplit('.', 1)[-1]}",
        )
    remaining = context.time_remaining()
    DEADLINE.set(time.monotonic() + remaining if remaining is not None else None)
    try:
        return await call()
    except ServingError as exc:
        await context.abort(exc.code, exc.message)
    except Exception:  # the data plane maps everything; this is the last line of defence
        log.exception("unexpected error in a gRPC call")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    raise AssertionError("unreachable")  # context.abort always raises


class PredictionServiceAdapter:
    """``tensorflow.serving.PredictionService``."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dp = dataplane

    async def Predict(
        self, request: predict_pb2.PredictRequest, context: Context
    ) -> predict_pb2.PredictResponse:
        if tracing.TRACER is not None:
            return await tracing.traced(
                "modelserver.Predict",
                context.invocation_metadata() or (),
                lambda: answer(context, request, lambda: self._dp.predict(request)),
            )
        return await answer(context, request, lambda: self._dp.predict(request))

    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: Context
    ) -> classification_pb2.ClassificationResponse:
        return await tracing.around(
            "modelserver.Classify",
            context.invocation_metadata() or (),
            lambda: answer(context, request, lambda: self._dp.classify(request)),
        )

    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: Context
    ) -> regression_pb2.RegressionResponse:
        return await tracing.around(
            "modelserver.Regress",
            context.invocation_metadata() or (),
            lambda: answer(context, request, lambda: self._dp.regress(request)),
        )

    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: Context
    ) -> inference_pb2.MultiInferenceResponse:
        return await answer(context, request, lambda: self._dp.multi_inference(request))

    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return await answer(context, request, lambda: self._dp.get_model_metadata(request))


class ModelServiceAdapter:
    """``tensorflow.serving.ModelService``. ``reload`` applies an authorized reload: the data plane's own by
    default; with ``--num_workers`` > 1 the process layer passes one that applies it on every worker before
    it answers (``modelserver.process.peers``)."""

    def __init__(self, dataplane: DataPlane, reload: Reload | None = None) -> None:
        self._dp = dataplane
        self._reload = reload or dataplane.reload_config

    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return await answer(context, request, lambda: self._dp.get_model_status(request))

    async def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: Context
    ) -> model_management_pb2.ReloadConfigResponse:
        async def reload() -> model_management_pb2.ReloadConfigResponse:
            self._dp.control.authorize(context.invocation_metadata())
            return await self._reload(request)

        return await answer(context, request, reload)


def add_services(
    server: grpc.aio.Server, dataplane: DataPlane, *, healthcheck: bool, reload: Reload | None = None
) -> health.aio.HealthServicer | None:
    """Register the services; with ``healthcheck`` also ``grpc.health.v1.Health`` (NOT_SERVING until the
    caller marks it SERVING)."""
    add_servicer(
        server, prediction_service_pb2.DESCRIPTOR, "PredictionService", PredictionServiceAdapter(dataplane)
    )
    add_servicer(server, model_service_pb2.DESCRIPTOR, "ModelService", ModelServiceAdapter(dataplane, reload))
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
