"""gateway.errors: the gRPC -> HTTP table and the single reply mapping (JSON bodies, never a traceback)."""

from __future__ import annotations

import grpc
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import gateway.errors
from gateway.errors import (
    GRPC_TO_HTTP,
    AdminDisabled,
    ModelNotFound,
    TooManyPixels,
    UnsupportedMediaType,
    UpstreamError,
    install_handlers,
)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.CANCELLED, 499),
    ],
)
def test_grpc_codes_map_to_http(code: grpc.StatusCode, status: int) -> None:
    error = UpstreamError(code, "details", address="h:1")
    assert error.status == status and error.kind == f"upstream_{code.name.lower()}"
    assert ("Retry-After" in error.headers()) == (code is grpc.StatusCode.UNAVAILABLE)


def test_the_documented_status_table_is_the_code() -> None:
    """The module docstring's table (with TF Serving's column) and ``GRPC_TO_HTTP`` say the same."""
    doc = (gateway.errors.__doc__ or "").split("\n    gRPC status", 1)[1].split("\n\n", 1)[0]
    documented: dict[grpc.StatusCode, int] = {}
    names: list[str] = []
    for line in doc.splitlines()[1:]:
        words = line.replace(",", " ").split()
        numbers = [word for word in words if word.isdigit()]
        names += [word for word in words if not word.isdigit()]
        if numbers:  # the row's last line: HTTP, then TF Serving's
            documented.update({grpc.StatusCode[name]: int(numbers[0]) for name in names})
            names = []
    assert documented == {code: status for code, status in GRPC_TO_HTTP.items()}
    assert set(documented) == set(grpc.StatusCode) - {grpc.StatusCode.OK}


def _app() -> FastAPI:
    app = FastAPI()
    install_handlers(app)
    errors = {
        "unavailable": UpstreamError(grpc.StatusCode.UNAVAILABLE, "connection refused"),
        "model": ModelNotFound("fashion", version=9),
        "pixels": TooManyPixels("too many pixels"),
        "media": UnsupportedMediaType("not an image"),
        "admin": AdminDisabled(),
    }

    @app.get("/raise/{kind}")
    async def raise_(kind: str) -> None:
        if kind == "crash":
            raise RuntimeError("secret internal detail")
        raise errors[kind]

    @app.get("/typed")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    return app


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/raise/unavailable", 503, "upstream_unavailable"),
        ("/raise/model", 404, "model_not_found"),
        ("/raise/pixels", 413, "too_many_pixels"),
        ("/raise/media", 415, "unsupported_media_type"),
        ("/raise/admin", 403, "admin_disabled"),
        ("/raise/crash", 500, "internal"),
        ("/typed?n=x", 422, "validation"),
        ("/nowhere", 404, "not_found"),
    ],
)
def test_replies_are_json_error_bodies(path: str, status: int, code: str) -> None:
    with TestClient(_app(), raise_server_exceptions=False) as client:
        reply = client.get(path)
    assert reply.status_code == status
    body = reply.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in reply.text and "secret internal detail" not in reply.text
    if status == 503:
        assert reply.headers["retry-after"] == "2"
