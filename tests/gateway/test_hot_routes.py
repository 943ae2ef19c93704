"""gateway.middleware.hot_routes: classify and predict answered outside FastAPI's router give the route's own replies.

Two apps in this process - hot routes on and off - against the real modelserver process of the gateway tests;
every request of the table gets the same status, body and headers from both, and the same metrics. The hot app
must have answered the simple requests itself (``taken``) and passed the others to the route.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devtools.fashion import encode, fashion_test_images
from gateway.app import create_app
from gateway.middleware.hot_routes import HotRoutes
from gateway.settings import Settings

PNG: list[bytes] = []


@pytest.fixture(scope="module")
def clients(modelserver: Any, live_repo: Path, data_dir: Path) -> Iterator[tuple[TestClient, TestClient]]:
    PNG[:] = [encode(image, "PNG") for image, _ in fashion_test_images(data_dir, 3)]
    settings = Settings(
        default_model_server=modelserver.grpc_target,
        model_config_file=live_repo / "models.config",
        max_upload_bytes=64 * 1024,
        max_files=4,
    )
    hot = TestClient(create_app(settings), raise_server_exceptions=False)
    plain = TestClient(create_app(settings, hot_routes=False), raise_server_exceptions=False)
    with hot, plain:
        yield hot, plain


def _hot_routes(app: FastAPI) -> HotRoutes:
    node: Any = app.middleware_stack
    while not isinstance(node, HotRoutes):
        node = node.app
    return node


def _upload(*names: str) -> dict[str, Any]:
    return {"files": [("file", (name, PNG[i % len(PNG)], "image/png")) for i, name in enumerate(names)]}


# (path, query, request kwargs, taken by the hot route)
CASES: list[tuple[str, str, Any, bool]] = [
    ("/v1/models/fashion:classify", "", lambda: _upload("a.png"), True),
    ("/v1/models/fashion:classify", "k=3", lambda: _upload("a.png", "b.png", "c.png"), True),
    ("/v1/models/fashion:classify", "k=1000&version=1", lambda: _upload("a.png"), True),
    ("/v1/models/fashion:classify", "version=2", lambda: _upload(""), True),
    ("/v1/models/fashion:classify", "version=7", lambda: _upload("a.png"), True),  # no such version: 404
    ("/v1/models/fashion:classify", "label=nothing_here", lambda: _upload("a.png"), True),
    ("/v1/models/fashion:classify", "version=1&label=stable", lambda: _upload("a.png"), True),  # 400
    ("/v1/models/nomodel:classify", "", lambda: _upload("a.png"), True),
    ("/v1/models/fashion:classify", "", lambda: _upload(*"abcde"), True),  # too many files
    ("/v1/models/fashion:classify", "", lambda: {"files": {"file": ("x.png", b"")}}, True),
    ("/v1/models/fashion:classify", "", lambda: {"files": {"file": ("x.txt", b"not an image")}}, True),
    ("/v1/models/fashion:classify", "", lambda: {"files": {"other": ("x.png", PNG[0])}}, True),
    (
        "/v1/models/fashion:classify",
        "",
        lambda: {"content": b"hi", "headers": {"content-type": "text/x"}},
        True,
    ),
    (
        "/v1/models/fashion:classify",
        "",
        lambda: {
            "content": gzip.compress(b'{"texts": ["a"]}'),
            "headers": {"content-type": "application/json", "content-encoding": "gzip"},
        },
        True,
    ),
    (
        "/v1/models/text:classify",
        "k=2",
        lambda: {"json": {"texts": ["WINNER! claim your prize", "hi mum"]}},
        True,
    ),
    ("/v1/models/text:classify", "", lambda: {"json": {"texts": "hi"}}, True),
    ("/v1/models/text:predict", "", lambda: {"json": {"texts": ["see you at 5"]}}, True),
    ("/v1/models/housing:classify", "", lambda: {"json": {"records": [{"x": 1}]}}, True),
    ("/v1/models/half:predict", "version=1", lambda: {"json": {"records": [{"x": 1.5}, {"x": -2}]}}, True),
    ("/v1/models/fashion:predict", "", lambda: _upload("a.png"), True),
    # not simple: the FastAPI route answers (its 422s, its parsing of these values)
    ("/v1/models/fashion:classify", "k=0", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:classify", "k=1001", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:classify", "k=01", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:classify", "k=", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:classify", "k=2&k=3", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:classify", "version=9223372036854775808", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:classify", "label=bad-label", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:classify", "unknown=1", lambda: _upload("a.png"), False),
    ("/v1/models/fashion:predict", "k=3", lambda: _upload("a.png"), False),
]


def _comparable(reply: Any) -> tuple[int, Any, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in reply.headers.items() if k != "date")
    body = reply.json() if reply.headers.get("content-type") == "application/json" else reply.text
    return reply.status_code, body, headers


@pytest.mark.parametrize(("path", "query", "kwargs", "taken"), CASES)
def test_hot_route_replies_equal_the_routes(
    clients: tuple[TestClient, TestClient], path: str, query: str, kwargs: Any, taken: bool
) -> None:
    hot, plain = clients
    before = _hot_routes(hot.app).taken  # type: ignore[arg-type]
    url = f"{path}?{query}" if query else path
    ours = _comparable(hot.post(url, **kwargs()))
    assert _hot_routes(hot.app).taken - before == int(taken)  # type: ignore[arg-type]
    assert ours == _comparable(plain.post(url, **kwargs()))
    assert ours[0] in (200, 400, 404, 413, 415, 422)


def test_hot_routes_count_in_the_route_metrics(clients: tuple[TestClient, TestClient]) -> None:
    hot, plain = clients
    # the table ran through both apps: the request and error counters agree line for line
    pattern = re.compile(r"^gateway_(?:requests|errors)_total\{.*$", re.MULTILINE)
    ours = sorted(pattern.findall(hot.get("/metrics").text))
    assert ours == sorted(pattern.findall(plain.get("/metrics").text))
    lines = [
        line for line in hot.get("/metrics").text.splitlines() if line.startswith("gateway_requests_total{")
    ]
    assert any('route="/v1/models/{name}:classify"' in line and 'status="200"' in line for line in lines), (
        lines
    )
