"""The transport floor: grpc.aio and uvicorn answering canned replies (bench/baselines/transport_floor.py),
driven like the modelserver - the same fashion bodies, h2load and wrk - at the lowest and highest
concurrency. Points ``floor.grpc.c<N>`` and ``floor.rest.c<N>``: the ceiling (req/s) and the latency floor
(p50) of each transport on this machine, in the same run as the figures they bound."""

from __future__ import annotations

from typing import Any

from bench.baselines.transport_floor import PREDICT_PATH
from bench.loadgen import grpc_load
from bench.payloads import PREDICT_METHOD
from bench.scenarios.modelserver import rest_point, verify_grpc
from bench.servers import start_floor

__all__ = ["run"]


def run(ctx: Any) -> None:
    s = ctx.settings
    body = ctx.payloads.grpc_fashion
    with start_floor(ctx) as server:
        grpc_port, rest_url = server.ports["grpc"], f"http://127.0.0.1:{server.ports['http']}{PREDICT_PATH}"
        problem = verify_grpc(grpc_port, body.read_bytes(), "probabilities")
        ctx.results.setdefault("verified", {})["grpc.floor"] = problem or "ok"
        for c in (min(s.concurrencies), max(s.concurrencies)):
            ctx.point(
                f"floor.grpc.c{c}",
                server,
                lambda c=c: grpc_load(
                    grpc_port,
                    PREDICT_METHOD,
                    body,
                    concurrency=c,
                    duration_s=s.duration_s,
                    warmup_s=s.warmup_s,
                ),
            )
            rest_point(ctx, server, f"floor.rest.c{c}", rest_url, c)
