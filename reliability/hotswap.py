"""Hot-swap endurance: ``swaps`` consecutive new versions of one model published (atomically, as the export
does) while requests flow through the gateway. Each swap is complete when the new version is the only one
AVAILABLE; every request must succeed, exactly one version may stay loaded, and the modelserver's memory,
file descriptors and threads must not grow with the number of swaps."""

from __future__ import annotations

import shutil
import time

import httpx

from reliability.load import Load, summarize
from reliability.outcome import Outcome
from reliability.payloads import HOUSING_RECORD, Request, mixed_requests
from reliability.probes import Usage, usage
from reliability.repo import latest_version, publish
from reliability.stack import Stack, wait_until

__all__ = ["MODEL", "RSS_TOLERANCE", "run"]

MODEL = "housing"
RSS_TOLERANCE = 0.05  # RSS after the last swap within 5 % of RSS after the warm-up swaps
# Threads after the last swaps vs after the warm-up: the server's thread pools (the data plane's and asyncio's
# default executor) start their threads lazily, up to their fixed sizes, so a few may appear late (20 -> 22
# seen once in 100 swaps); a leak of one thread per load or unload would add dozens over the run.
THREAD_SLACK = 4


def _available(stack: Stack) -> list[int]:
    reply = httpx.get(f"{stack.rest_url}/v1/models/{MODEL}", timeout=10).json()
    return sorted(
        int(v["version"]) for v in reply.get("model_version_status", []) if v["state"] == "AVAILABLE"
    )


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def run(stack: Stack, *, swaps: int, warmup_swaps: int = 10) -> Outcome:
    """Usage is sampled after every swap, under load; growth = the median of the last ``tail`` samples over
    the median right after the warm-up swaps (gRPC's and the executors' worker pools grow and shrink with
    load, so single samples are noise; a leak grows with every swap)."""
    outcome = Outcome("hotswap", "Hot-swap endurance")
    base = stack.repo / MODEL
    source = stack.workdir / "swap-source"
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(base / str(latest_version(base)), source)
    pid = stack.pids()["modelserver"]
    swapped: list[float] = []
    series: list[Usage] = []
    swap_requests = [
        Request("housing:regress", f"/v1/models/{MODEL}:regress", json={"records": [HOUSING_RECORD]}),
        Request("housing:predict", f"/v1/models/{MODEL}:predict", json={"records": [HOUSING_RECORD]}),
    ]
    requests = swap_requests * 2 + mixed_requests(12, seed=11, models=stack.models)
    with Load(stack.gateway_url, requests, workers=3) as load:
        for index in range(swaps):
            started = time.monotonic()
            version = latest_version(base) + 1
            publish(source, base, version)
            if not wait_until(lambda v=version: _available(stack) == [v], timeout=60, interval=0.05):
                outcome.failures.append(
                    f"swap {index + 1}: version {version} never became the only one AVAILABLE"
                )
                break
            swapped.append(time.monotonic() - started)
            for old in base.iterdir():  # retention: keep the serving version and the one before it
                if old.name.isdigit() and int(old.name) < version - 1:
                    shutil.rmtree(old)
            series.append(usage(pid))
        time.sleep(1.0)
        samples = load.stop()
    warm_at = min(warmup_swaps, max(0, len(series) - 1))
    tail = max(1, min(10, (len(series) - warm_at) // 2))
    after_warmup = series[warm_at : warm_at + tail] or [usage(pid)]
    last = series[-tail:] or after_warmup
    warm = Usage(*(_median([getattr(u, f) for u in after_warmup]) for f in ("rss_bytes", "fds", "threads")))
    final = Usage(*(_median([getattr(u, f) for u in last]) for f in ("rss_bytes", "fds", "threads")))
    failed = [s for s in samples if s.status != 200]
    swap_samples = [s for s in samples if s.name.startswith(MODEL)]
    available = _available(stack)
    drift = (final.rss_bytes - warm.rss_bytes) / warm.rss_bytes
    if failed:
        outcome.failures.append(
            f"{len(failed)} of {len(samples)} requests failed during the swaps; first {failed[0].status} "
            f"{failed[0].detail[:200]}"
        )
    outcome.check(len(swapped) == swaps, f"only {len(swapped)} of {swaps} swaps completed")
    outcome.check(len(available) == 1, f"versions still AVAILABLE after the swaps: {available}")
    outcome.check(
        abs(drift) <= RSS_TOLERANCE,
        f"modelserver RSS moved {drift:+.1%} from swap {warm_at + 1} to swap {len(series)} "
        f"(tolerance {RSS_TOLERANCE:.0%})",
    )
    outcome.check(final.fds <= warm.fds + 1, f"modelserver fds grew {warm.fds} -> {final.fds}")
    outcome.check(
        final.threads <= warm.threads + THREAD_SLACK,
        f"modelserver threads grew {warm.threads} -> {final.threads} (slack {THREAD_SLACK})",
    )
    outcome.figures = {
        "swaps": len(swapped),
        "failed_requests": len(failed),
        "requests": summarize(samples),
        "requests_to_swapped_model": len(swap_samples),
        "versions_available_after": available,
        "swap_seconds_p50": round(sorted(swapped)[len(swapped) // 2], 2) if swapped else None,
        "swap_seconds_max": round(max(swapped), 2) if swapped else None,
        "modelserver_after_warmup": warm.as_dict(),
        "modelserver_after_last_swaps": final.as_dict(),
        "samples_compared": tail,
        "rss_mib_every_10_swaps": [round(u.rss_bytes / 2**20, 1) for u in series[::10]],
        "threads_every_10_swaps": [u.threads for u in series[::10]],
        "rss_drift": round(drift, 4),
        "rss_tolerance": RSS_TOLERANCE,
    }
    return outcome.finish()
