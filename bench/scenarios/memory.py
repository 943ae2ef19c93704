"""Scenario 6: memory. The batching-off model server starts with an empty model config; the models are then
added one at a time by rewriting the config file (the server re-reads it every second), and the RSS growth
once each is AVAILABLE (loaded and warmed) is compared with the loader's estimate, read from the server's log.
The same server then serves the batching-off load points, so the scenario costs no extra server start."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from bench.procs import ServerProcess
from bench.repo import write_models_config
from bench.scrape import ram_estimates
from bench.servers import model_available, start_modelserver

__all__ = ["add_models", "breakdown", "start_empty"]

_SETTLE_S = 1.5


def _config(ctx: Any) -> Path:
    return Path(ctx.work) / "growing.config"


def start_empty(ctx: Any) -> ServerProcess:
    """A batching-off model server with no model yet, re-reading its config file every second."""
    config = _config(ctx)
    write_models_config(config, ctx.repo, [])
    server = start_modelserver(
        ctx, "modelserver-batching-off", config, batching=False, wait_for=(), config_poll_s=1
    )
    server.wait_until(
        lambda: "Exporting HTTP/REST API" in server.log_text(), ctx.settings.ready_timeout_s, "serving REST"
    )
    return server


def add_models(ctx: Any, server: ServerProcess, measure: bool) -> None:
    """Add every model to the server's config, one at a time; with ``measure``, record RSS growth vs the
    loader's estimate per model under ``ctx.results["memory"]``."""
    rest = server.ports["rest"]
    names = [n for n in ("fashion", "text", "housing") if n in ctx.versions]
    baseline = previous = _settled_rss(server) if measure else 0
    rows: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        write_models_config(_config(ctx), ctx.repo, names[: index + 1])
        server.wait_until(
            partial(model_available, rest, name),
            ctx.settings.ready_timeout_s,
            f"serving {name} after the config change",
        )
        if not measure:
            continue
        rss = _settled_rss(server)
        estimate = ram_estimates(server.log_text()).get((name, ctx.versions[name]))
        growth = rss - previous
        rows.append(
            {
                "model": name,
                "version": ctx.versions[name],
                "rss_after": rss,
                "growth": growth,
                "estimate": estimate,
                "estimate_error": None if not estimate or growth <= 0 else (estimate - growth) / growth,
            }
        )
        previous = rss
        shown = "n/a" if estimate is None else f"{estimate / 2**20:.1f} MiB"
        ctx.say(f"memory {name}: RSS +{growth / 2**20:.1f} MiB, loader estimate {shown}")
    if measure:
        ctx.results["memory"] = {"baseline_rss": baseline, "models": rows}


def _settled_rss(server: ServerProcess) -> int:
    time.sleep(_SETTLE_S)
    return server.rss_bytes()


def breakdown(pid: int) -> dict[str, int]:
    """RSS split of one process (``/proc/<pid>/smaps_rollup``, bytes): ``anonymous`` pages (heap, tensors,
    thread stacks: each worker has its own) and ``file`` pages (mapped files, mostly TensorFlow's shared
    libraries: every worker mapping the same file shares them, and the kernel can drop and re-read them),
    ``pss`` the proportional share (the bench process itself maps no TensorFlow library). Empty when /proc
    is unavailable."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Pss", "Anonymous"):
                    out[name.lower()] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    if "rss" in out and "anonymous" in out:
        out["file"] = out["rss"] - out["anonymous"]
    return out
