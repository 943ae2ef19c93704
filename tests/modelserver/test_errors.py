"""modelserver.errors: gRPC codes, HTTP statuses (TF Serving's ToHTTPStatusCode) and messages."""

from __future__ import annotations

import grpc
import pytest

from modelserver.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    ServableNotFound,
    ServingError,
    Unavailable,
    Unimplemented,
    UnknownVersionLabel,
    http_status_for,
)

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (C.OK, 200), (C.CANCELLED, 499), (C.UNKNOWN, 500), (C.INVALID_ARGUMENT, 400),
        (C.DEADLINE_EXCEEDED, 504), (C.NOT_FOUND, 404), (C.ALREADY_EXISTS, 409), (C.PERMISSION_DENIED, 403),
        (C.RESOURCE_EXHAUSTED, 429), (C.FAILED_PRECONDITION, 400), (C.ABORTED, 409), (C.OUT_OF_RANGE, 400),
        (C.UNIMPLEMENTED, 501), (C.INTERNAL, 500), (C.UNAVAILABLE, 503), (C.DATA_LOSS, 500),
        (C.UNAUTHENTICATED, 401),
    ],
)  # fmt: skip
def test_http_status_table(code: grpc.StatusCode, http: int) -> None:
    assert http_status_for(code) == http
    assert ServingError("x", code=code).http_status == http


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (ServableNotFound("half"), C.NOT_FOUND, "Servable not found for request: Latest(half)"),
        (ServableNotFound("half", 42), C.NOT_FOUND, "Servable not found for request: Specific(half, 42)"),
        (UnknownVersionLabel("beta"), C.INVALID_ARGUMENT, "Unrecognized servable version label: beta"),
        (InvalidArgument("bad"), C.INVALID_ARGUMENT, "bad"),
        (FailedPrecondition("p"), C.FAILED_PRECONDITION, "p"),
        (Unavailable("u"), C.UNAVAILABLE, "u"),
        (ResourceExhausted("r"), C.RESOURCE_EXHAUSTED, "r"),
        (Unimplemented("i"), C.UNIMPLEMENTED, "i"),
    ],
)
def test_subclasses_carry_code_and_message(error: ServingError, code: grpc.StatusCode, message: str) -> None:
    assert error.code == code
    assert error.message == message == str(error)
