"""``create_app``: the gateway's FastAPI application (services built once per app, in its lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from gateway.catalog import Catalog
from gateway.client import ModelClient
from gateway.contract import ContractStore
from gateway.deps import Services
from gateway.errors import install_handlers
from gateway.limits import BodyLimit, RateLimit
from gateway.metrics import Metrics
from gateway.operations import Operations
from gateway.reconciler import Reconciler
from gateway.routes import admin, health, inference, models, versions
from gateway.settings import Settings, get_settings
from gateway.traffic import Traffic

__all__ = ["create_app"]

# multipart framing and form fields on top of the file bytes themselves
_BODY_OVERHEAD = 64 * 1024
# The web console (static files, relative URLs), served at / after every API route when present.
CONSOLE_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    client = ModelClient(settings, metrics)
    catalog = Catalog(settings)
    reconciler = Reconciler(settings, client, catalog, metrics)
    operations = Operations(catalog, reconciler, metrics)
    services = Services(
        settings,
        metrics,
        client,
        ContractStore(client, settings.contract_cache_size),
        catalog,
        reconciler,
        operations,
        Traffic(settings, catalog, operations, metrics),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(reconciler.run()) if catalog.enabled else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.traffic.close()
            await client.close()

    app = FastAPI(
        title="tfserve-stack gateway",
        version="0.1.0",
        description="Images, texts and records in, plain JSON out; TensorFlow Serving's gRPC APIs behind.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes * settings.max_files + _BODY_OVERHEAD)
    if settings.rate_limit_per_second > 0:  # outside the body limit, inside the metrics
        app.add_middleware(RateLimit, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst)

    configured = frozenset(catalog.models())  # the only values of the `model` metric label

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "") or ("/console" if route is not None else "unmatched")
        name = request.scope.get("path_params", {}).get("name")
        model = name if name in configured else ""
        metrics.requests.labels(template, request.method, str(response.status_code), model).inc()
        metrics.latency.labels(template, request.method, model).observe(time.perf_counter() - started)
        kind = getattr(request.state, "error_kind", None)
        if kind is not None:
            metrics.errors.labels(kind).inc()
        return response

    for module in (inference, models, versions, admin, health):
        app.include_router(module.router)
    if (CONSOLE_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app
