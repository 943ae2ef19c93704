"""Scenario 2: the naive FastAPI + ``model.predict`` server and the BentoML peer (adaptive batching), both
driven by wrk with the same ``{"instances": [image]}`` body the modelserver's REST predict gets."""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError
from bench.loadgen import http_load
from bench.procs import ServerProcess
from bench.servers import start_bentoml, start_naive

__all__ = ["run_bentoml", "run_naive"]

JSON = "application/json"


def _drive(ctx: Any, server: ServerProcess, name: str) -> None:
    url = f"http://127.0.0.1:{server.ports['http']}/v1/models/fashion:predict"
    s = ctx.settings
    for concurrency in (min(s.concurrencies), max(s.concurrencies)):
        ctx.point(
            f"{name}.c{concurrency}",
            server,
            lambda c=concurrency: http_load(
                url,
                ctx.payloads.rest_fashion,
                JSON,
                concurrency=c,
                duration_s=s.duration_s,
                timeout_s=s.http_timeout_s,
                warmup_s=s.warmup_s,
            ),
        )
    ctx.results.setdefault("rss_bytes", {})[name] = server.rss_bytes()


def run_naive(ctx: Any) -> None:
    try:
        with start_naive(ctx) as server:
            _drive(ctx, server, "naive")
    except BenchError as exc:
        ctx.skip("naive", str(exc).splitlines()[0])


def run_bentoml(ctx: Any) -> None:
    try:
        import bentoml
    except ImportError as exc:
        ctx.skip("bentoml", f"BentoML is not installed ({exc}): pip install '.[bench]'")
        return
    ctx.results.setdefault("versions", {})["bentoml"] = bentoml.__version__
    try:
        with start_bentoml(ctx) as server:
            _drive(ctx, server, "bentoml")
    except BenchError as exc:
        ctx.skip("bentoml", str(exc).splitlines()[0])
