"""The gateway's error hierarchy, and the ONE place where errors become HTTP replies.

::

    GatewayError                      (500, "internal")
    ├── BadRequest                    (400, "bad_request")       wrong JSON shape, empty file, bad parameter
    │   ├── TooManyItems              (400, "too_many_items")    more files / texts / records than allowed
    │   └── InputsNotMappable         (400, "inputs_not_mappable") the model takes inputs the gateway cannot
    │                                                            build (several images, other tensors)
    ├── Unauthorized                  (401, "unauthorized")      admin call without / with a wrong token
    ├── AdminDisabled                 (403, "admin_disabled")    no GATEWAY_ADMIN_TOKEN configured
    ├── NotFound                      (404, "not_found")
    │   ├── ModelNotFound(name, version, label)
    │   └── ModelFileNotFound(name, version, file, why)  (404, "model_file_not_found") card, curves
    ├── Conflict                      (409, "conflict")          e.g. nothing to roll back to
    ├── PayloadTooLarge               (413, "payload_too_large") upload bytes over the limit
    │   └── TooManyPixels             (413, "too_many_pixels")   decompression bomb
    ├── UnsupportedMediaType          (415, "unsupported_media_type") not a supported image
    ├── ModelFileInvalid(name, version, file, why)  (500, "model_file_invalid") e.g. a card that is not JSON
    └── UpstreamError(code, message)  status from the gRPC code (table below), "upstream_<code>"

An upstream gRPC status becomes the HTTP status of ``GRPC_TO_HTTP``: TensorFlow Serving's own REST mapping
(``ToHTTPStatusCode`` in ``model_servers/http_server.cc``) for every status the caller caused or can act on,
and 502 Bad Gateway where TF Serving answers 500 or 401. TF Serving is the origin server, so its own faults are
its 500s; the gateway is a proxy, and a fault of the server behind it is a bad gateway (RFC 9110 15.6.3).
UNAUTHENTICATED from a model server means the gateway's own credentials were refused, not the caller's: a 401
would ask the caller to authenticate, which cannot help. UNAVAILABLE is 503 with ``Retry-After``; a code
missing from the table is 502. ``tests/gateway/test_errors.py`` checks this table against ``GRPC_TO_HTTP``.

::

    gRPC status                                     HTTP   TF Serving's REST
    CANCELLED                                       499    499
    INVALID_ARGUMENT, FAILED_PRECONDITION,
      OUT_OF_RANGE                                  400    400
    NOT_FOUND                                       404    404
    ALREADY_EXISTS, ABORTED                         409    409
    PERMISSION_DENIED                               403    403
    RESOURCE_EXHAUSTED                              429    429
    UNIMPLEMENTED                                   501    501
    UNAVAILABLE                                     503    503
    DEADLINE_EXCEEDED                               504    504
    UNKNOWN, INTERNAL, DATA_LOSS                    502    500
    UNAUTHENTICATED                                 502    401

Every reply body is ``{"error": {"code": <kind>, "message": <what to fix>}}``; a traceback is never sent.
"""

from __future__ import annotations

import logging
import re

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

__all__ = [
    "GRPC_TO_HTTP",
    "AdminDisabled",
    "BadRequest",
    "Conflict",
    "GatewayError",
    "InputsNotMappable",
    "ModelFileInvalid",
    "ModelFileNotFound",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "TooManyItems",
    "TooManyPixels",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "install_handlers",
]

log = logging.getLogger("gateway")

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 502,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 502,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 502,
    grpc.StatusCode.UNAUTHENTICATED: 502,
}
RETRY_AFTER_SECONDS = 2
# peers as gRPC names them in its errors: "ipv4:10.0.0.5:8500", "[::1]:8500", "unix:/run/x.sock"
_PEER = re.compile(r"(?:ipv[46]:)?(?:\[[0-9a-fA-F:.]+\]|\b\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?|\bunix:\S+")


class GatewayError(Exception):
    """Base: carries the HTTP status, a stable machine-readable kind, and a message that says what to fix."""

    status: int = 500
    kind: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(GatewayError):
    status, kind = 400, "bad_request"


class TooManyItems(BadRequest):
    kind = "too_many_items"

    def __init__(self, what: str, count: int, limit: int) -> None:
        super().__init__(f"{count} {what} sent; at most {limit} per request - split the request")


class InputsNotMappable(BadRequest):
    """The model's inputs are not what images, texts or records become: the message lists them and points at
    the model server's own Predict, which serves any signature."""

    kind = "inputs_not_mappable"

    def __init__(self, name: str, sent: str, inputs: str, why: str) -> None:
        super().__init__(
            f"model {name!r} cannot be fed {sent} through the gateway: {why}. Its inputs: {inputs}. Call the "
            f"model server's Predict with every input instead (REST: POST /v1/models/{name}:predict on the "
            'model server, {"inputs": {"<input>": [...], ...}})'
        )


class Unauthorized(GatewayError):
    status, kind = 401, "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class AdminDisabled(GatewayError):
    status, kind = 403, "admin_disabled"

    def __init__(self) -> None:
        super().__init__("the admin API is disabled: set GATEWAY_ADMIN_TOKEN on the gateway to enable it")


class NotFound(GatewayError):
    status, kind = 404, "not_found"


class ModelNotFound(NotFound):
    kind = "model_not_found"

    def __init__(
        self, name: str, version: int | None = None, label: str | None = None, known: list[str] | None = None
    ):
        if version is not None:
            message = f"model {name!r} has no version {version} being served"
        elif label is not None:
            message = f"model {name!r} has no version labelled {label!r}"
        else:
            hint = f"; known models: {', '.join(known)}" if known else ""
            message = f"no model named {name!r}{hint}"
        super().__init__(message)
        self.name, self.version, self.label = name, version, label


class ModelFileNotFound(NotFound):
    """A published file of a version (model_card.json, training_curves.png) the gateway cannot serve."""

    kind = "model_file_not_found"

    def __init__(self, name: str, version: int | str, file: str, why: str) -> None:
        super().__init__(f"{file} of model {name!r} version {version}: {why}")
        self.name, self.version, self.file = name, version, file


class ModelFileInvalid(GatewayError):
    kind = "model_file_invalid"

    def __init__(self, name: str, version: int, file: str, why: str) -> None:
        super().__init__(f"{file} of model {name!r} version {version} is broken: {why}")
        self.name, self.version, self.file = name, version, file


class Conflict(GatewayError):
    status, kind = 409, "conflict"


class PayloadTooLarge(GatewayError):
    status, kind = 413, "payload_too_large"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # the rest of an oversized body is never read


class TooManyPixels(PayloadTooLarge):
    kind = "too_many_pixels"


class UnsupportedMediaType(GatewayError):
    status, kind = 415, "unsupported_media_type"


class UpstreamError(GatewayError):
    """A model server answered with a gRPC error (or could not be reached). ``address`` is for logs and
    metrics: the message a client sees never names an internal address (gRPC's own errors do)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, address: str = "") -> None:
        detail = _PEER.sub("<model server>", message)
        detail = detail.replace(address, "<model server>") if address else detail  # host names too
        super().__init__(f"model server: {detail}" if detail else f"model server: {code.name}")
        self.detail = detail or code.name
        self.address = address
        self.code = code
        self.status = GRPC_TO_HTTP.get(code, 502)
        self.kind = f"upstream_{code.name.lower()}"

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError, address: str) -> UpstreamError:
        """A failed call's error: gRPC's own connection errors are long multi-line strings; the first line
        says what happened."""
        details = (exc.details() or "").strip()
        return cls(exc.code(), details.splitlines()[0][:500] if details else "", address=address)

    @classmethod
    def from_status(cls, value: int, message: str, address: str) -> UpstreamError:
        """A reply's ``StatusProto`` error code (a refused ReloadConfig) as the error."""
        code = next((c for c in grpc.StatusCode if c.value[0] == value), grpc.StatusCode.UNKNOWN)
        return cls(code, message, address=address)

    def headers(self) -> dict[str, str]:
        if self.code is grpc.StatusCode.UNAVAILABLE:
            return {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return {}


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": kind, "message": message}}


def install_handlers(app: FastAPI) -> None:
    """Map every exception to a JSON reply (the single mapping point)."""

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        request.state.error_kind = exc.kind
        return JSONResponse(error_body(exc.kind, exc.message), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.error_kind = "validation"
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return JSONResponse(error_body("validation", "; ".join(parts) or "invalid request"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        request.state.error_kind = kind
        return JSONResponse(
            error_body(kind, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client left mid-body (an aborted upload): nobody reads the reply, nothing worth a traceback.
        request.state.error_kind = "client_disconnected"
        body = error_body("client_disconnected", "the client closed the request")
        return JSONResponse(body, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request.state.error_kind = "internal"
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal", "internal error; the gateway log has details"), status_code=500
        )
