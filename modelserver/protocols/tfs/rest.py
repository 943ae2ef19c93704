"""The REST adapter: TensorFlow Serving's HTTP API over the data plane.

A thin ASGI app. It only matches URLs, converts JSON (``json_predict``, ``json_examples``) and delegates to the
``DataPlane``; lifecycle, versions, labels, batching and metrics counting all live behind it.

URLs, matched like TF Serving's regexes (case-insensitive, on the raw path; names and labels URL-decoded)::

    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:(predict|classify|regress)
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]            model status (all versions if none given)
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata   signature defs
    GET  {monitoring_path}                                          Prometheus text (when monitoring is on)

Any other method or path under ``/v1/`` is ``400 {"error": "Malformed request: <METHOD> <path>"}``; every
reply is ``Content-Type: application/json`` and every error ``{"error": "<message>"}`` with the HTTP status of
its gRPC code (``ServingError.http_status``). An unexpected exception is logged and answered with a 500 and a
one-line message - never a traceback. Request bodies may be gzip-encoded.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelserver.errors import FailedPrecondition, Internal, InvalidArgument, PayloadTooLarge, ServingError
from modelserver.observe import tracing
from modelserver.protocols.http import DEFAULT_MAX_BODY_BYTES, offload, read_body
from modelserver.protocols.tfs.json.examples import ExamplesJson, classification_json, regression_json
from modelserver.protocols.tfs.json.predict import PredictJson, predict_response_json
from modelserver.protocols.tfs.json.text import dumps, error_json
from modelserver.runtime.limits import DEFAULT_LIMITS, RequestLimits
from modelserver.runtime.servable import DEFAULT_SIGNATURE
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    regression_pb2,
)

if TYPE_CHECKING:
    from modelserver.runtime.execution import Prediction

__all__ = ["DEFAULT_MONITORING_PATH", "RestDataPlane", "create_rest_app"]

log = logging.getLogger("modelserver.rest")

DEFAULT_MONITORING_PATH = "/monitoring/prometheus/metrics"
JSON = "application/json"
_MAX_VERSION_DIGITS = 19  # int64

# http_rest_api_util.cc: kPredictionApiGegex, kModelStatusApiRegex, kHTTPRestApiHandlerPathRegex.
_PREDICTION_API = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.I
)
_MODEL_STATUS_API = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.I
)
_REST_API_PATH = re.compile(r"/v1/.*", re.I | re.S)
_CORS_ORIGIN = re.compile(r"https?://", re.I)
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET",
    "Access-Control-Allow-Headers": "Content-Type",
}
_INT64_MAX = 2**63 - 1


class RestDataPlane(Protocol):
    """What the REST adapter needs from ``modelserver.dataplane.DataPlane`` (both protocols share it).

    Every method raises ``ServingError`` subclasses for the caller's mistakes (unknown model/version/label,
    bad signature, bad tensors) with TF Serving's messages; the adapter maps them to HTTP in one place.
    """

    def prediction(self, spec: model_pb2.ModelSpec) -> AbstractAsyncContextManager[Prediction]:
        """The version ``spec`` resolves to, held for the block: parse, run and reply on that one version."""
        ...

    async def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse: ...

    async def regress(
        self, request: regression_pb2.RegressionRequest
    ) -> regression_pb2.RegressionResponse: ...

    async def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse: ...

    async def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse: ...


def _json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _error_response(error: ServingError) -> Response:
    # 413: the rest of the oversized body is never read, so the connection ends with the reply
    headers = {"Connection": "close"} if isinstance(error, PayloadTooLarge) else None
    return _json_response(error_json(error.message), error.http_status, headers)


def _proto_dict(message: Message) -> dict[str, Any]:
    # always_print: TF Serving prints empty strings and enum zeros too (e.g. "signature_name": "").
    printed: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return printed


class _Target:
    """The model a URL names: TF Serving's ParseModelInfo + FillModelSpecWithNameVersionAndLabel."""

    def __init__(self, name: str, version: str | None, label: str | None) -> None:
        self.name = _url_decode(name, "model name") if name else ""
        self.version: int | None = None
        if version:
            # the regex admits digits only; a long run is refused before int() (string-conversion limit)
            number = int(version) if len(version.lstrip("0")) <= _MAX_VERSION_DIGITS else _INT64_MAX + 1
            if number > _INT64_MAX:
                raise InvalidArgument(f"Failed to convert version: {version[:40]} to numeric.")
            self.version = number
        self.label = _url_decode(label, "model version label") if label else None
        if self.version is not None and self.label is not None:
            raise InvalidArgument(
                f"Both model version ({self.version}) and model version label ({self.label})"
                " cannot be supplied."
            )

    def spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.name, signature_name=signature_name)
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        return spec


def _url_decode(text: str, what: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"Failed to decode {what}:{text}") from None


class RestApi:
    """The ASGI application; one per server, shared by all connections (it holds no per-request state)."""

    def __init__(
        self,
        dataplane: RestDataPlane,
        *,
        monitoring_path: str | None = None,
        render_metrics: Callable[[], tuple[bytes, str]] | None = None,
        enable_cors: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        limits: RequestLimits = DEFAULT_LIMITS,
    ) -> None:
        self._dataplane = dataplane
        self._max_body_bytes = max_body_bytes
        self._limits = limits
        self._monitoring_path = monitoring_path
        self._render_metrics = render_metrics
        self._cors = dict(_CORS_HEADERS) if enable_cors else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._respond(request)
        except ServingError as error:
            response = _error_response(error)
        except ClientDisconnect:  # the client left mid-body: nobody to answer, nothing worth a traceback
            return
        except Exception as exc:  # a bug: logged in full here, one line to the client
            log.exception("REST %s %s failed", request.method, _raw_path(scope))
            response = _json_response(error_json(f"Internal error: {type(exc).__name__}: {exc}"), 500)
        if self._cors:
            response.headers.update(self._cors)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        method = request.method
        path = _raw_path(request.scope)
        if self._monitoring_path and path == self._monitoring_path:
            return await self._metrics()
        if not _REST_API_PATH.fullmatch(path):
            return _json_response(error_json(f"Not found: {method} {path}"), 404)
        if method == "OPTIONS":
            return self._preflight(request)
        if method == "POST":
            match = _PREDICTION_API.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                target = _Target(name, version, label)
                body = await read_body(request, self._max_body_bytes)
                self._limits.check_json_body(body)  # before parsing: its strings and values, estimated
                if verb == "predict":
                    if tracing.TRACER is not None:
                        return await tracing.traced(
                            "modelserver.Predict",
                            request.headers.items(),
                            lambda: self._predict(target, body),
                        )
                    return await self._predict(target, body)
                if verb == "classify":
                    return await tracing.around(
                        "modelserver.Classify", request.headers.items(), lambda: self._classify(target, body)
                    )
                if verb == "regress":
                    return await tracing.around(
                        "modelserver.Regress", request.headers.items(), lambda: self._regress(target, body)
                    )
        elif method == "GET":
            match = _MODEL_STATUS_API.fullmatch(path)
            if match:
                name, version, label, subresource = match.groups()
                target = _Target(name or "", version, label)
                if not target.name:
                    raise InvalidArgument("Missing model name in request.")
                if subresource == "metadata":  # exact compare, as TF Serving; /METADATA means status
                    return await self._metadata(target)
                return await self._status(target)
        raise InvalidArgument(f"Malformed request: {method} {path}")

    async def _predict(self, target: _Target, body: bytes) -> Response:
        parsed: PredictJson = await offload(lambda: PredictJson.from_body(body), len(body))
        spec = target.spec(parsed.signature_name or DEFAULT_SIGNATURE)
        try:
            # one version from the signature's dtypes to the outputs: a hot swap cannot come in between
            async with self._dataplane.prediction(spec) as prediction:
                dtypes = prediction.input_dtypes
                convert = functools.partial(parsed.tensors, dtypes, parsed.signature_name)
                fmt, inputs = await offload(convert, len(body))
                # The parsed body's lists (an image holds one per pixel) go before the model runs: kept
                # across the await, every request in flight holds them and the cyclic GC walks them all,
                # on the event loop (measured at c64: ~80 us of GC per request; released here: ~0)
                del parsed, convert
                outputs = await prediction.run(inputs)
        except InvalidArgument as error:
            # gRPC Predict says 'Serving signature key "X" not found.'; TF Serving's REST handler looks the
            # signature up itself first (GetInfoMap) and words it differently. REST clients see REST's text.
            if error.message == f'Serving signature key "{spec.signature_name}" not found.':
                raise InvalidArgument(
                    f'Serving signature name: "{spec.signature_name}" not found in signature def'
                ) from None
            raise
        size = sum(getattr(array, "nbytes", 0) for array in outputs.values())
        return _json_response(await offload(lambda: predict_response_json(outputs, fmt), size))

    async def _classify(self, target: _Target, body: bytes) -> Response:
        parsed: ExamplesJson = await offload(lambda: ExamplesJson.from_body(body, self._limits), len(body))
        request = classification_pb2.ClassificationRequest(
            model_spec=target.spec(parsed.signature_name), input=parsed.input
        )
        response = await self._dataplane.classify(request)
        return _json_response(classification_json(response.result))

    async def _regress(self, target: _Target, body: bytes) -> Response:
        parsed: ExamplesJson = await offload(lambda: ExamplesJson.from_body(body, self._limits), len(body))
        request = regression_pb2.RegressionRequest(
            model_spec=target.spec(parsed.signature_name), input=parsed.input
        )
        response = await self._dataplane.regress(request)
        return _json_response(regression_json(response.result))

    async def _status(self, target: _Target) -> Response:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=target.spec())
        response = await self._dataplane.get_model_status(request)
        for version_status in response.model_version_status:
            version_status.status.SetInParent()  # TF Serving always prints {"error_code": "OK", ...}
        return _json_response(dumps(_proto_dict(response)))

    async def _metadata(self, target: _Target) -> Response:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=target.spec(), metadata_field=["signature_def"]
        )
        response = await self._dataplane.get_model_metadata(request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata["signature_def"].Unpack(
            signature_defs
        ):
            raise Internal("Failed to find 'signature_def' key in the GetModelMetadataResponse metadata map.")
        # TF Serving prints model_spec and the unpacked SignatureDefMap separately (no "@type" key).
        payload = {
            "model_spec": _proto_dict(response.model_spec),
            "metadata": {"signature_def": _proto_dict(signature_defs)},
        }
        return _json_response(dumps(payload))

    def _preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin", "")
        if not _CORS_ORIGIN.match(origin):
            raise FailedPrecondition(
                "CORS preflight request needs an Origin header starting with http:// or https://,"
                f" got {origin!r}"
            )
        return _json_response(b"", 200)

    async def _metrics(self) -> Response:
        if self._render_metrics is None:
            from modelserver.metrics import render

            self._render_metrics = render
        body, content_type = self._render_metrics()
        return Response(body, status_code=200, media_type=content_type)


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        return bytes(raw).decode("latin-1").split("?", 1)[0]
    return str(scope.get("path", ""))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_rest_app(
    dataplane: RestDataPlane,
    *,
    monitoring_path: str | None = DEFAULT_MONITORING_PATH,
    enable_cors: bool = False,
    render_metrics: Callable[[], tuple[bytes, str]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    limits: RequestLimits = DEFAULT_LIMITS,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The REST API as an ASGI app (the server runs it with uvicorn when ``--rest_api_port`` > 0).

    ``monitoring_path``: where Prometheus metrics are served (None: not served). ``enable_cors``: add the
    CORS headers of ``--rest_api_enable_cors_support``. ``render_metrics`` defaults to
    ``modelserver.metrics.render``. ``max_body_bytes``: the largest request body (after decompression).
    ``limits``: the request limits a body's estimated cost is checked against before it is parsed.
    """
    return RestApi(
        dataplane,
        monitoring_path=monitoring_path,
        render_metrics=render_metrics,
        enable_cors=enable_cors,
        max_body_bytes=max_body_bytes,
        limits=limits,
    )
