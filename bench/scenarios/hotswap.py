"""Scenario 5: hot swap under load. Steady gRPC Predict load (h2load, concurrency 8, no version pinned, so
"latest"); a third of the way in, a new fashion version is published into the bench repository (staging
directory + one rename, as the export does). Reported: failed requests (h2load + the server's counter by
status), and p50/p99 before the publish, during the swap (publish -> the old version is unloaded) and after.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from bench.loadgen import LoadResult, grpc_load, percentiles
from bench.payloads import PREDICT_METHOD
from bench.procs import ServerProcess, http_get
from bench.profiling import profile
from bench.repo import publish_copy
from bench.scenarios.modelserver import grpc_point

__all__ = ["run"]


def _versions(rest_port: int) -> dict[int, str]:
    status, body = http_get(f"http://127.0.0.1:{rest_port}/v1/models/fashion")
    if status != 200:
        return {}
    try:
        return {int(v["version"]): v["state"] for v in json.loads(body).get("model_version_status", [])}
    except (ValueError, KeyError, TypeError):
        return {}


def run(ctx: Any, server: ServerProcess) -> None:
    s = ctx.settings
    rest = server.ports["rest"]
    old = ctx.versions["fashion"]
    box: dict[str, LoadResult] = {}
    load = threading.Thread(
        target=lambda: box.setdefault(
            "r", grpc_point(ctx, server, "hotswap.c8", ctx.payloads.grpc_fashion, 8, duration_s=s.hotswap_s)
        ),
        daemon=True,
    )
    load.start()
    time.sleep(s.warmup_s + s.hotswap_s / 3)
    published_at = time.time()
    new = publish_copy(ctx.repo, "fashion")
    available_at = unloaded_at = None
    deadline = time.monotonic() + s.hotswap_s * 2 + 60
    while time.monotonic() < deadline and unloaded_at is None:
        states = _versions(rest)
        if available_at is None and states.get(new) == "AVAILABLE":
            available_at = time.time()
        if available_at is not None and states.get(old, "END") == "END":
            unloaded_at = time.time()
        time.sleep(0.05)
    load.join(timeout=s.hotswap_s + 120)
    ctx.versions["fashion"] = new
    result = box.get("r")
    if result is None:
        ctx.skip("hotswap", "the load run did not finish")
        return
    swap_end = unloaded_at or available_at or published_at
    phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for start, latency, status in result.samples:
        if status != 200:
            continue
        phase = "before" if start < published_at else "during" if start <= swap_end else "after"
        phases[phase].append(latency * 1000)
    summary = ctx.results["points"]["hotswap.c8"]
    ctx.results["hotswap"] = {
        "old_version": old,
        "new_version": new,
        "available_after_s": None if available_at is None else available_at - published_at,
        "old_unloaded_after_s": None if unloaded_at is None else unloaded_at - published_at,
        "failed": summary["errors"],
        "requests": summary["requests"],
        "phases": {
            name: {"requests": len(values), **vars(percentiles(values))} for name, values in phases.items()
        },
        "timeline": _timeline(result, published_at),
    }
    profile_swap(ctx, server)
    h = ctx.results["hotswap"]
    ctx.say(
        f"hot swap {old} -> {new}: available after {h['available_after_s']}, failed {h['failed']}, "
        + ", ".join(f"{k} p99 {v['p99_ms']:.1f} ms" for k, v in h["phases"].items())
    )


def profile_swap(ctx: Any, server: ServerProcess) -> None:
    """A second, unmeasured swap under the same load with py-spy on the server from the publish on: what it
    does while a new version loads (kept apart so the profiler's pauses never touch the measured swap)."""
    s = ctx.settings
    if s.profile_s <= 0:
        return
    seconds = min(4.0, s.profile_s)
    load = threading.Thread(
        target=lambda: grpc_load(
            server.ports["grpc"],
            PREDICT_METHOD,
            ctx.payloads.grpc_fashion,
            concurrency=8,
            duration_s=seconds + 3,
        ),
        daemon=True,
    )
    load.start()
    time.sleep(1.0)
    ctx.versions["fashion"] = publish_copy(ctx.repo, "fashion")
    out = ctx.work / "profiles" / "hotswap.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    found = profile(server.pid, seconds, out, "modelserver during a hot swap")
    ctx.profiles.append(found)
    load.join(timeout=seconds + 60)
    top = ", ".join(f"{name} {share:.0%}" for name, share in found.own[:3]) or found.error
    ctx.say(f"profile modelserver during a hot swap: {top}")


def _timeline(result: LoadResult, published_at: float, step_s: float = 0.5) -> list[dict[str, float]]:
    """p50/p99 per half second relative to the publish, for the plot."""
    buckets: dict[int, list[float]] = {}
    for start, latency, status in result.samples:
        if status == 200:
            buckets.setdefault(int((start - published_at) // step_s), []).append(latency * 1000)
    return [
        {
            "t_s": key * step_s,
            "requests": len(v),
            "p50_ms": percentiles(v).p50_ms,
            "p99_ms": percentiles(v).p99_ms,
        }
        for key, v in sorted(buckets.items())
    ]
