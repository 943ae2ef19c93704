"""Scenario 5: hot swap under load. Steady gRPC Predict load (h2load, concurrency 8, no version pinned, so
"latest"); a third of the way in, a new fashion version is published into the bench repository (staging
directory + one rename, as the export does). Reported: failed requests (h2load + the server's counter by
status), and p50/p99 before the publish, during the swap (publish -> the old version is unloaded) and after.

Then a control under the same load: instead of a publish, ``CONTROL_S`` seconds of CPU in another process at
the lowest priority Linux has (SCHED_IDLE: it runs only when no other thread wants a core). Its p99
during/before says what any work beside serving costs on this machine, whoever does it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from bench.loadgen import LoadResult, grpc_load, percentiles
from bench.payloads import PREDICT_METHOD
from bench.procs import ServerProcess, http_get
from bench.profiling import profile
from bench.repo import publish_copy
from bench.scenarios.modelserver import grpc_point

__all__ = ["CONTROL_S", "run"]

T = TypeVar("T")

CONTROL_S = 1.0  # about the CPU a swap of the fashion model takes (restore, warm-up replay: 0.5-1 s)
_IDLE_BURNER = (
    "import os, time\n"
    "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    f"end = time.monotonic() + {CONTROL_S}\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


def _versions(rest_port: int) -> dict[int, str]:
    status, body = http_get(f"http://127.0.0.1:{rest_port}/v1/models/fashion")
    if status != 200:
        return {}
    try:
        return {int(v["version"]): v["state"] for v in json.loads(body).get("model_version_status", [])}
    except (ValueError, KeyError, TypeError):
        return {}


def _under_load(
    ctx: Any, server: ServerProcess, name: str, seconds: float, event: Callable[[], T]
) -> tuple[LoadResult | None, T]:
    """gRPC Predict on fashion at concurrency 8 for ``seconds`` (load point ``name``), with ``event()`` run a
    third of the way in: the load's result (None when it did not finish) and the event's."""
    box: dict[str, LoadResult] = {}
    load = threading.Thread(
        target=lambda: box.setdefault(
            "r", grpc_point(ctx, server, name, ctx.payloads.grpc_fashion, 8, duration_s=seconds)
        ),
        daemon=True,
    )
    load.start()
    time.sleep(ctx.settings.warmup_s + seconds / 3)
    happened = event()
    load.join(timeout=seconds + 120)
    return box.get("r"), happened


def _publish(ctx: Any, rest: int, old: int) -> tuple[int, float, float | None, float | None]:
    """Publish a new fashion version and wait until the old one is unloaded: the new version, when it was
    published, when it became AVAILABLE and when the old one was gone (None: not seen in time)."""
    published_at = time.time()
    new = publish_copy(ctx.repo, "fashion")
    available_at = unloaded_at = None
    deadline = time.monotonic() + ctx.settings.hotswap_s * 2 + 60
    while time.monotonic() < deadline and unloaded_at is None:
        states = _versions(rest)
        if available_at is None and states.get(new) == "AVAILABLE":
            available_at = time.time()
        if available_at is not None and states.get(old, "END") == "END":
            unloaded_at = time.time()
        time.sleep(0.05)
    return new, published_at, available_at, unloaded_at


def run(ctx: Any, server: ServerProcess) -> None:
    old = ctx.versions["fashion"]
    result, (new, published_at, available_at, unloaded_at) = _under_load(
        ctx, server, "hotswap.c8", ctx.settings.hotswap_s, lambda: _publish(ctx, server.ports["rest"], old)
    )
    ctx.versions["fashion"] = new
    if result is None:
        ctx.skip("hotswap", "the load run did not finish")
        return
    swap_end = unloaded_at or available_at or published_at
    summary = ctx.results["points"]["hotswap.c8"]
    ctx.results["hotswap"] = {
        "old_version": old,
        "new_version": new,
        "available_after_s": None if available_at is None else available_at - published_at,
        "old_unloaded_after_s": None if unloaded_at is None else unloaded_at - published_at,
        "failed": summary["errors"],
        "requests": summary["requests"],
        "phases": _phases(result, published_at, swap_end),
        "timeline": _timeline(result, published_at),
    }
    control(ctx, server)
    profile_swap(ctx, server)
    h = ctx.results["hotswap"]
    ctx.say(
        f"hot swap {old} -> {new}: available after {h['available_after_s']}, failed {h['failed']}, "
        + ", ".join(f"{k} p99 {v['p99_ms']:.1f} ms" for k, v in h["phases"].items())
    )


def _phases(result: LoadResult, started: float, ended: float) -> dict[str, dict[str, Any]]:
    """Latency percentiles of the requests started before ``started``, up to ``ended``, and after."""
    phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for start, latency, status in result.samples:
        if status == 200:
            phase = "before" if start < started else "during" if start <= ended else "after"
            phases[phase].append(latency * 1000)
    return {name: {"requests": len(values), **vars(percentiles(values))} for name, values in phases.items()}


def _idle_cpu() -> tuple[float, float]:
    """``CONTROL_S`` s of CPU in a SCHED_IDLE process: when it started and ended."""
    started = time.time()
    subprocess.run([sys.executable, "-c", _IDLE_BURNER], check=False, timeout=60)
    return started, time.time()


def control(ctx: Any, server: ServerProcess) -> None:
    """The same load for half as long; a third of the way in, ``CONTROL_S`` s of CPU in a SCHED_IDLE process
    instead of a publish (``results["hotswap"]["control"]``)."""
    seconds = max(2.0, ctx.settings.hotswap_s / 2)
    result, (started, ended) = _under_load(ctx, server, "hotswap.control.c8", seconds, _idle_cpu)
    if result is None:
        return
    phases = _phases(result, started, ended)
    ctx.results["hotswap"]["control"] = {"cpu_s": CONTROL_S, "policy": "SCHED_IDLE", "phases": phases}
    during, before = phases["during"], phases["before"]
    ctx.say(
        f"hot swap control ({CONTROL_S:.0f} s of SCHED_IDLE CPU in another process): "
        f"before p99 {before['p99_ms']:.1f} ms, during p99 {during['p99_ms']:.1f} ms"
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
