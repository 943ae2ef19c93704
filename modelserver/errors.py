"""The modelserver's one error hierarchy. Every failure a client can see is a ``ServingError``; the gRPC
adapter turns it into ``context.abort(code, message)`` and the REST adapter into ``{"error": message}`` with
``http_status`` (TF Serving's ``ToHTTPStatusCode`` table). Messages follow TF Serving's texts so that clients
matching on them keep working.

    ServingError                      (.code: grpc.StatusCode, .message, .http_status)
    ├── InvalidArgument               INVALID_ARGUMENT     400
    │   └── UnknownVersionLabel       "Unrecognized servable version label: L"
    ├── FailedPrecondition            FAILED_PRECONDITION  400
    ├── Unauthenticated               UNAUTHENTICATED      401
    ├── PermissionDenied              PERMISSION_DENIED    403
    ├── NotFound                      NOT_FOUND            404
    │   └── ServableNotFound          "Servable not found for request: Latest(m)" | "Specific(m, 42)"
    ├── Unavailable                   UNAVAILABLE          503
    ├── ResourceExhausted             RESOURCE_EXHAUSTED   429
    │   └── PayloadTooLarge           (REST: 413)          a request body over the server's limit
    ├── Unimplemented                 UNIMPLEMENTED        501
    ├── DeadlineExceeded              DEADLINE_EXCEEDED    504
    ├── Cancelled                     CANCELLED            499
    └── Internal                      INTERNAL             500

``ConfigError`` is separate: a bad flag or config file at start-up (the CLI prints it and exits 1).
"""

from __future__ import annotations

import grpc

__all__ = [
    "Cancelled",
    "ConfigError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ResourceExhausted",
    "ServableNotFound",
    "ServingError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnknownVersionLabel",
    "http_status_for",
]

# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc); anything else is 500.
_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status_for(code: grpc.StatusCode) -> int:
    """The HTTP status TF Serving's REST server sends for a status code."""
    return _HTTP_STATUS.get(code, 500)


class ServingError(Exception):
    """A failure with a gRPC status code; ``message`` is what the client reads."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def http_status(self) -> int:
        return http_status_for(self.code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}: {self.message!r})"


class InvalidArgument(ServingError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class UnknownVersionLabel(InvalidArgument):
    def __init__(self, label: str) -> None:
        super().__init__(f"Unrecognized servable version label: {label}")
        self.label = label


class FailedPrecondition(ServingError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(ServingError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServingError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(ServingError):
    code = grpc.StatusCode.NOT_FOUND


class ServableNotFound(NotFound):
    """No loaded version answers the request (TF Serving's ServableRequest text in the message)."""

    def __init__(self, name: str, version: int | None = None) -> None:
        request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        super().__init__(f"Servable not found for request: {request}")
        self.name = name
        self.version = version


class Unavailable(ServingError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServingError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PayloadTooLarge(ResourceExhausted):
    @property
    def http_status(self) -> int:
        return 413


class Unimplemented(ServingError):
    code = grpc.StatusCode.UNIMPLEMENTED


class DeadlineExceeded(ServingError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ServingError):
    code = grpc.StatusCode.CANCELLED


class Internal(ServingError):
    code = grpc.StatusCode.INTERNAL


class ConfigError(Exception):
    """A flag, model config, batching or monitoring file that cannot be used; raised before serving starts."""
