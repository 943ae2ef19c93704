"""Scenario 6: memory. A model server starts with an empty model config; the models are then added one at a
time by rewriting the config file (the server re-reads it every second), and the RSS growth once each is
AVAILABLE (loaded and warmed) is compared with the loader's estimate, read from the server's log."""

from __future__ import annotations

import time
from typing import Any

from bench.errors import BenchError
from bench.repo import write_models_config
from bench.scrape import ram_estimates
from bench.servers import model_available, start_modelserver

__all__ = ["run"]

_SETTLE_S = 1.5


def _settled_rss(server: Any) -> int:
    time.sleep(_SETTLE_S)
    return int(server.rss_bytes())


def run(ctx: Any) -> None:
    config = ctx.work / "memory.config"
    names = [n for n in ("fashion", "text", "housing") if n in ctx.versions]
    write_models_config(config, ctx.repo, [])
    rows: list[dict[str, Any]] = []
    try:
        with start_modelserver(
            ctx, "modelserver-memory", config, batching=False, wait_for=(), config_poll_s=1
        ) as server:
            rest = server.ports["rest"]
            server.wait_until(
                lambda: "Exporting HTTP/REST API" in server.log_text() or model_available(rest, "none-yet"),
                ctx.settings.ready_timeout_s,
                "serving REST",
            )
            baseline = previous = _settled_rss(server)
            for index, name in enumerate(names):
                write_models_config(config, ctx.repo, names[: index + 1])
                server.wait_until(
                    lambda n=name: model_available(rest, n),
                    ctx.settings.ready_timeout_s,
                    f"serving {name} after the config change",
                )
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
                        "estimate_error": None
                        if not estimate or growth <= 0
                        else (estimate - growth) / growth,
                    }
                )
                previous = rss
                ctx.say(
                    f"memory {name}: RSS +{growth / 2**20:.1f} MiB, loader estimate "
                    f"{'n/a' if estimate is None else f'{estimate / 2**20:.1f} MiB'}"
                )
    except BenchError as exc:
        ctx.skip("memory", str(exc).splitlines()[0])
        return
    ctx.results["memory"] = {"baseline_rss": baseline, "models": rows}
