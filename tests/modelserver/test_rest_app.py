"""modelserver.protocols.tfs.rest in process: URL dispatch, CORS headers, the monitoring path and body decoding - the parts
of the adapter that answer before any model is involved (no data plane is needed; the model-facing behaviour
is covered end to end in test_rest.py), and what a predict keeps alive while a stand-in model runs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

from modelserver.protocols.tfs.rest import create_rest_app
from tfs_protos.tensorflow.core.framework import types_pb2


class _NoModels:
    """Stands in for the data plane where none may be reached: every call is a test failure."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the data plane was called ({name}) for a request the adapter answers itself")


def _request(
    method: str,
    path: str,
    *,
    cors: bool = False,
    max_body_bytes: int = 1 << 20,
    dataplane: Any = None,
    **kwargs: Any,
) -> httpx.Response:
    app = create_rest_app(
        dataplane or _NoModels(),
        monitoring_path="/metrics/here",
        enable_cors=cors,
        max_body_bytes=max_body_bytes,
        render_metrics=lambda: (b"modelserver_up 1\n", "text/plain; version=0.0.4; charset=utf-8"),
    )

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


DISPATCH = [
    ("GET", "/v1/models", 400, {"error": "Missing model name in request."}),
    ("GET", "/v1/models/m/versions/x", 400, {"error": "Malformed request: GET /v1/models/m/versions/x"}),
    ("DELETE", "/v1/models/m", 400, {"error": "Malformed request: DELETE /v1/models/m"}),
    ("HEAD", "/v1/models/m", 400, None),
    (
        "POST",
        "/v1/models/m/versions/1/labels/a:predict",
        400,
        {"error": "Malformed request: POST /v1/models/m/versions/1/labels/a:predict"},
    ),
    (
        "GET",
        "/v1/models/m/versions/9223372036854775808",
        400,
        {"error": "Failed to convert version: 9223372036854775808 to numeric."},
    ),
    ("GET", "/healthz", 404, {"error": "Not found: GET /healthz"}),
    (
        "GET",
        "/v1/models/m/versions/" + "9" * 5000,
        400,
        {"error": "Failed to convert version: " + "9" * 40 + " to numeric."},
    ),
]


@pytest.mark.parametrize(("method", "path", "status", "body"), DISPATCH)
def test_dispatch_errors(method: str, path: str, status: int, body: Any) -> None:
    reply = _request(method, path)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/json"
    if body is not None:
        assert reply.json() == body


def test_cors_headers_only_when_enabled() -> None:
    origin = {"Origin": "http://localhost:3000"}
    plain = _request("OPTIONS", "/v1/models/m:predict", headers=origin)
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    for reply in (
        _request("OPTIONS", "/v1/models/m:predict", cors=True, headers=origin),
        _request("GET", "/v1/models", cors=True),  # errors carry them too
    ):
        assert reply.headers["access-control-allow-origin"] == "*"
        assert reply.headers["access-control-allow-methods"] == "POST, GET"
        assert reply.headers["access-control-allow-headers"] == "Content-Type"
    refused = _request("OPTIONS", "/v1/models/m:predict", cors=True, headers={"Origin": "file://x"})
    assert refused.status_code == 400


def test_monitoring_path_serves_metrics_as_text() -> None:
    reply = _request("GET", "/metrics/here")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text == "modelserver_up 1\n"


BODIES = [
    ("gzip", zlib.compressobj(wbits=31).compress(b"{") + b"", "Failed to decompress the gzip request body"),
    ("br", b"{}", "Unsupported Content-Encoding: br; send identity or gzip"),
]


@pytest.mark.parametrize(("encoding", "body", "message"), BODIES)
def test_undecodable_bodies_are_400(encoding: str, body: bytes, message: str) -> None:
    reply = _request("POST", "/v1/models/m:predict", content=body, headers={"Content-Encoding": encoding})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith(message)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_gzip_bomb_is_refused_at_the_body_limit(encoding: str) -> None:
    compressor = zlib.compressobj(wbits=31 if encoding == "gzip" else 15)
    bomb = compressor.compress(b" " * 100_000) + compressor.flush()
    reply = _request(
        "POST",
        "/v1/models/m:predict",
        content=bomb,
        headers={"Content-Encoding": encoding},
        max_body_bytes=1000,
    )
    assert reply.status_code == 413
    assert "over 1000 bytes" in reply.json()["error"]


def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    reply = _request("POST", "/v1/models/m:predict", content=b"x" * 2000, max_body_bytes=1000)
    assert reply.status_code == 413


def test_streamed_body_over_the_limit_is_413() -> None:
    def chunks() -> Any:
        for _ in range(5):
            yield b"x" * 500

    async def go() -> httpx.Response:
        app = create_rest_app(_NoModels(), max_body_bytes=1000)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:

            async def body() -> Any:
                for chunk in chunks():
                    yield chunk

            return await client.post("/v1/models/m:predict", content=body())

    assert asyncio.run(go()).status_code == 413


class _OneModel:
    """A data plane with one float input ``x``: ``run`` records which of the request's row lists (the parsed
    JSON) are still alive while the model runs, and answers the input back."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows
        self.alive_during_run: int | None = None

    @contextlib.asynccontextmanager
    async def prediction(self, spec: Any) -> AsyncIterator[Any]:
        plane = self

        class Prediction:
            def __init__(self) -> None:
                self.input_dtypes = {"x": types_pb2.DT_FLOAT}

            async def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                plane.alive_during_run = sum(  # equal to a row, but not the test's own row object
                    1
                    for obj in gc.get_objects()
                    if type(obj) is list
                    and len(obj) == len(plane.rows)
                    and all(type(v) is float for v in obj)  # other lists may hold tensors (their own ==)
                    and obj in plane.rows
                    and not any(obj is row for row in plane.rows)
                )
                return {"y": inputs["x"]}

        yield Prediction()


def test_the_parsed_json_is_released_before_the_model_runs() -> None:
    """A REST predict's parsed body (one Python list per row of an image, all tracked by the cyclic GC) is
    gone before the model runs: every request in flight held them across the run, and at c64 the GC walked
    them all on the event loop, ~80 us per request. The tensor built from them is what the model gets."""
    rows = [[1000.5 + r + c / 100 for c in range(28)] for r in range(28)]  # values no other list holds
    plane = _OneModel(rows)
    reply = _request(
        "POST", "/v1/models/m:predict", dataplane=plane, content=json.dumps({"instances": [rows]})
    )
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()["predictions"][0], rows, rtol=1e-6)
    assert plane.alive_during_run == 0
