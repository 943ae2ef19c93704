"""``create_app``: the gateway's FastAPI application (services built once per app, in its lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Container
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import tracing
from gateway.deps import Services
from gateway.errors import install_handlers
from gateway.metrics import Metrics
from gateway.middleware.hot_routes import HotRoutes
from gateway.middleware.limits import BodyLimit, RateLimit
from gateway.middleware.security import SecurityHeaders, add_docs
from gateway.rollout.catalog import Catalog
from gateway.rollout.operations import Operations
from gateway.rollout.reconciler import Reconciler
from gateway.rollout.registry import Registry
from gateway.rollout.traffic import Traffic
from gateway.routes import admin, explain, health, inference, models, monitor, versions
from gateway.settings import Settings, get_settings
from gateway.upload_log import UploadLog
from gateway.upstream.client import ModelClient
from gateway.upstream.contract import ContractStore

__all__ = ["create_app"]

# multipart framing and form fields on top of the file bytes themselves
_BODY_OVERHEAD = 64 * 1024
# every body but an inference call's (admin: a version, a weight)
_SMALL_BODY = 64 * 1024
# The web console (static files, relative URLs), served at / after every API route when present.
CONSOLE_DIR = Path(__file__).resolve().parent / "static"


class Measure:
    """Counts and times every request by route template, method, status and configured model (pure ASGI:
    ``configured`` are the only values of the ``model`` label: the catalog, so models added at run time too)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, configured: Container[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.configured = configured

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # the router fills the scope in place
            template = getattr(route, "path", "") or ("/console" if route is not None else "unmatched")
            name = scope.get("path_params", {}).get("name")
            model = name if name in self.configured else ""
            method = scope["method"]
            self.metrics.requests.labels(template, method, str(status), model).inc()
            self.metrics.latency.labels(template, method, model).observe(time.perf_counter() - started)
            kind = (scope.get("state") or {}).get("error_kind")
            if kind is not None:
                self.metrics.errors.labels(kind).inc()


def _services(settings: Settings) -> Services:
    """One set of services per app."""
    metrics = Metrics()
    catalog = Catalog(settings)
    client = ModelClient(settings, metrics, catalog.replica_targets)
    reconciler = Reconciler(settings, client, catalog, metrics)
    operations = Operations(catalog, reconciler, metrics)
    return Services(
        settings,
        metrics,
        client,
        ContractStore(client, settings.contract_cache_size, catalog.repository.card_contract),
        catalog,
        reconciler,
        operations,
        Traffic(settings, catalog, operations, metrics),
        Registry(settings, client, catalog, reconciler, metrics),
        UploadLog(settings, metrics) if UploadLog.enabled(settings) else None,
    )


def create_app(settings: Settings | None = None, *, hot_routes: bool = True) -> FastAPI:
    """The gateway app; ``hot_routes=False`` leaves classify and predict to FastAPI alone (tests compare)."""
    settings = settings or get_settings()
    tracing.configure(settings.otlp_endpoint, settings.trace_file, sample_ratio=settings.trace_sample_ratio)
    services = _services(settings)
    metrics, catalog = services.metrics, services.catalog

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(services.reconciler.run())] if catalog.enabled else []
        if services.client.watched:
            tasks.append(asyncio.create_task(services.client.watch()))  # active health of the replicas
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.traffic.close()
            await services.client.close()
            if services.upload_log is not None:
                services.upload_log.close()

    app = FastAPI(
        title="tfserve-stack gateway",
        version="0.1.0",
        description="Images, texts and records in, plain JSON out; TensorFlow Serving's gRPC APIs behind.",
        lifespan=lifespan,
        docs_url=None,  # add_docs: Swagger UI from local assets, never a CDN
        redoc_url=None,
    )
    app.state.services = services
    # a model added or removed (here or by another gateway): nothing cached about an earlier one stays
    catalog.on_change(services.contracts.drop)
    catalog.on_change(services.traffic.forget)
    install_handlers(app)
    for module in (inference, explain, models, versions, admin, health, monitor):
        app.include_router(module.router)
    if hot_routes:  # innermost: every middleware below applies to it as to the routes
        routes = {route.path: route for route in inference.router.routes if isinstance(route, APIRoute)}
        app.add_middleware(HotRoutes, services=services, routes=routes, handlers=app.exception_handlers)
    # JSON bodies are held in memory: their limit is one upload; multipart files are read into memory, up to
    # max_request_bytes in all; the admin API's bodies are a few fields.
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes + _BODY_OVERHEAD,
        json_limit=settings.max_upload_bytes,
        small_limit=_SMALL_BODY,
    )
    if settings.rate_limit_per_second > 0:  # outside the body limit, inside the metrics
        app.add_middleware(RateLimit, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst)
    app.add_middleware(Measure, metrics=metrics, configured=catalog)
    app.add_middleware(SecurityHeaders)
    add_docs(app)
    if (CONSOLE_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app
