"""Scenario 3: the modelserver's gRPC Predict (h2load) and REST predict (wrk) at each concurrency, batching
off and on, on the same fashion image, plus batching on with TF Serving's exact scheduling
(``--batching_dispatch_when_idle=false``) at the lowest concurrency, where the two differ. gRPC answers are
verified twice: the server's request counter by status around every load point (h2load cannot see gRPC
errors) and a sampled Python client check."""

from __future__ import annotations

from typing import Any

import grpc

from bench.loadgen import LoadResult, grpc_load, http_load
from bench.payloads import PREDICT_METHOD
from bench.procs import ServerProcess
from bench.scrape import failures, request_counts
from bench.servers import METRICS_PATH, start_modelserver

__all__ = ["grpc_point", "rest_point", "run_matrix", "run_tf_scheduling", "verify_grpc"]


def verify_grpc(port: int, body: bytes, output: str, rows: int = 1, samples: int = 5) -> str:
    """Send ``samples`` of the exact request the load generator sends with a real gRPC client and check the
    answer; return "" when every answer is right, else what was wrong."""
    from tfs_protos.tensorflow_serving.apis import predict_pb2

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            PREDICT_METHOD,
            request_serializer=None,
            response_deserializer=predict_pb2.PredictResponse.FromString,
        )
        for _ in range(samples):
            try:
                reply = call(body[5:], timeout=30)
            except grpc.RpcError as exc:
                return f"gRPC {exc.code().name}: {exc.details()}"
            if output not in reply.outputs:
                return f"no output {output!r} in the reply (got {sorted(reply.outputs)})"
            dims = [d.size for d in reply.outputs[output].tensor_shape.dim]
            if not dims or dims[0] != rows:
                return f"output {output!r} has shape {dims}, expected {rows} row(s)"
    return ""


def grpc_point(
    ctx: Any,
    server: ServerProcess,
    key: str,
    body_path: Any,
    concurrency: int,
    duration_s: float | None = None,
) -> LoadResult:
    """One h2load point plus the server-side check of what it answered."""
    s = ctx.settings
    metrics_url = f"http://127.0.0.1:{server.ports['rest']}{METRICS_PATH}"
    before = request_counts(metrics_url)
    result: LoadResult = ctx.point(
        key,
        server,
        lambda: grpc_load(
            server.ports["grpc"],
            PREDICT_METHOD,
            body_path,
            concurrency=concurrency,
            duration_s=duration_s or s.duration_s,
            warmup_s=s.warmup_s,
        ),
    )
    counted = failures(before, request_counts(metrics_url), "grpc")
    summary = ctx.results["points"][key]
    if counted is None:
        summary["notes"].append("server metrics unavailable: gRPC statuses not verified")
    else:
        summary["grpc_ok"], summary["grpc_errors"] = counted
        if counted[1]:
            result.errors += counted[1]
            summary["errors"] = result.errors
            result.ok = max(0, result.ok - counted[1])
            result.rps = result.ok / result.duration_s
            summary["ok"], summary["rps"] = result.ok, result.rps
            ctx.say(f"{key}: the server answered {counted[1]} requests with a gRPC error")
    return result


def rest_point(ctx: Any, server: ServerProcess, key: str, url: str, concurrency: int) -> LoadResult:
    """One wrk point: the fashion REST body POSTed to ``url`` at the run's duration, warm-up and timeout."""
    s = ctx.settings
    result: LoadResult = ctx.point(
        key,
        server,
        lambda: http_load(
            url,
            ctx.payloads.rest_fashion,
            "application/json",
            concurrency=concurrency,
            duration_s=s.duration_s,
            timeout_s=s.http_timeout_s,
            warmup_s=s.warmup_s,
        ),
    )
    return result


def run_matrix(ctx: Any, server: ServerProcess, label: str) -> None:
    s = ctx.settings
    fashion = ctx.payloads.grpc_fashion
    problem = verify_grpc(server.ports["grpc"], fashion.read_bytes(), "probabilities")
    ctx.results.setdefault("verified", {})[f"grpc.{label}"] = problem or "ok"
    if problem:
        ctx.say(f"gRPC answers are wrong ({problem}); the figures below count them as served")
    rest_url = f"http://127.0.0.1:{server.ports['rest']}/v1/models/fashion:predict"
    for c in s.concurrencies:
        grpc_point(ctx, server, f"grpc.{label}.c{c}", fashion, c)
        rest_point(ctx, server, f"rest.{label}.c{c}", rest_url, c)
    if label == "batching_on":
        top = max(s.concurrencies)
        ctx.profile(
            server,
            "modelserver gRPC Predict",
            lambda: grpc_load(
                server.ports["grpc"], PREDICT_METHOD, fashion, concurrency=top, duration_s=s.profile_s + 2
            ),
        )
        ctx.profile(
            server,
            "modelserver REST predict",
            lambda: http_load(
                rest_url,
                ctx.payloads.rest_fashion,
                "application/json",
                concurrency=top,
                duration_s=s.profile_s + 2,
            ),
        )


def run_tf_scheduling(ctx: Any) -> None:
    """Batching on with TF Serving's exact scheduling (a lone request waits ``batch_timeout_micros``): the
    baseline of the idle-dispatch default at the lowest concurrency, in the same run."""
    s = ctx.settings
    low = min(s.concurrencies)
    with start_modelserver(
        ctx,
        "modelserver-batching-tf",
        ctx.work / "fashion.config",
        batching=True,
        wait_for=("fashion",),
        extra_flags=("--batching_dispatch_when_idle=false",),
    ) as server:
        grpc_point(ctx, server, f"grpc.batching_tf.c{low}", ctx.payloads.grpc_fashion, low)
        rest_url = f"http://127.0.0.1:{server.ports['rest']}/v1/models/fashion:predict"
        rest_point(ctx, server, f"rest.batching_tf.c{low}", rest_url, low)
