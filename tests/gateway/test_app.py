"""gateway.app: routes in OpenAPI, the body-size guard, /healthz, the console at /, JSON 404s."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from devtools.procs import REPO_ROOT
from gateway.app import CONSOLE_DIR, create_app
from gateway.routes import admin, health, inference, models, versions
from gateway.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_config_file=REPO_ROOT / "models" / "models.config",
        max_upload_bytes=2048,
        max_files=2,
        default_model_server="127.0.0.1:9",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_openapi_lists_every_endpoint_with_bodies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/v1/models/{name}:classify",
        "/v1/models/{name}:predict",
        "/v1/models/{name}:regress",
        "/v1/models",
        "/v1/models/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/admin/models/{name}:promote",
        "/v1/admin/models/{name}:rollback",
        "/v1/admin/models/{name}:latest",
        "/v1/admin/models/{name}/labels/{label}",
    ):
        assert path in paths, path
    body = paths["/v1/models/{name}:classify"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert paths["/v1/models/{name}:classify"]["post"]["responses"]["200"]["content"]["application/json"]


def test_oversized_body_is_refused_before_reading(client: TestClient) -> None:
    reply = client.post(
        "/v1/models/fashion:classify", content=b"x" * 80_000, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large"


def test_oversized_chunked_body_is_refused_while_streaming(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"--x\r\n" + b"x" * 4096

    reply = client.post(
        "/v1/models/fashion:classify",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large"


def test_health_and_unknown_paths(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    missing = client.get("/v1/nothing/here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_unreachable_server_is_not_ready(client: TestClient) -> None:
    reply = client.get("/readyz")
    assert reply.status_code == 503 and reply.json()["ready"] is False


@pytest.mark.skipif(not (CONSOLE_DIR / "index.html").is_file(), reason="no console in this checkout")
def test_console_is_served_at_root(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_no_route_or_dependency_hops_to_a_worker_thread() -> None:
    # FastAPI runs a plain ``def`` endpoint or dependency in a worker thread: a thread hop per request.
    def calls(dependant: Dependant) -> Iterator[tuple[str, Callable[..., object]]]:
        if dependant.call is not None:
            yield dependant.path or "?", dependant.call
        for sub in dependant.dependencies:
            yield from calls(sub)

    routers = (inference.router, models.router, versions.router, admin.router, health.router)
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 10
    sync = {
        f"{path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        for path, call in calls(route.dependant)
        if not inspect.iscoroutinefunction(call)
    }
    assert not sync, sync
