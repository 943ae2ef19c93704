"""Soak: ``total`` requests mixed over the three models through the gateway (4 client threads), sampling both
services' RSS, open file descriptors and threads. After the warm-up (the first ``warmup`` fraction), RSS must
stay within ±``RSS_TOLERANCE`` of its post-warm-up level, and descriptors and threads must not grow."""

from __future__ import annotations

import time
from typing import Any

from reliability.load import Load, summarize
from reliability.outcome import Outcome
from reliability.payloads import mixed_requests
from reliability.probes import Usage, usage
from reliability.stack import Stack

__all__ = ["RSS_TOLERANCE", "run"]

RSS_TOLERANCE = 0.05
SLACK = 2  # descriptors / threads: a pooled connection or worker may be open at one sample and not another


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)


def run(stack: Stack, *, total: int, warmup: float = 0.1, workers: int = 4) -> Outcome:
    outcome = Outcome("soak", "Soak")
    pids = stack.pids()
    series: dict[str, list[tuple[int, Usage]]] = {name: [] for name in pids}
    warm_at = int(total * warmup)
    with Load(
        stack.gateway_url, mixed_requests(256, seed=7), workers=workers, total=total, timeout=30
    ) as load:
        while load.running:
            sent = load.sent
            for name, pid in pids.items():
                series[name].append((sent, usage(pid)))
            time.sleep(0.5)
        samples = load.wait()
    time.sleep(1.0)
    idle = {name: usage(pid) for name, pid in pids.items()}
    failed = [s for s in samples if s.status != 200]
    if failed:
        outcome.failures.append(
            f"{len(failed)} of {len(samples)} requests failed; "
            f"first {failed[0].status} {failed[0].detail[:200]}"
        )
    figures: dict[str, Any] = {"requests": summarize(samples), "failed_requests": len(failed), "services": {}}
    for name, points in series.items():
        after = [u for sent, u in points if sent >= warm_at]
        if len(after) < 6:
            outcome.notes.append(f"{name}: too few samples after warm-up ({len(after)})")
            after = [u for _, u in points] or [idle[name]]
        base_rss = _mean([u.rss_bytes for u in after[:3]])
        end_rss = _mean([u.rss_bytes for u in after[-3:]])
        peak_rss = max(u.rss_bytes for u in after)
        drift = (end_rss - base_rss) / base_rss
        peak = (peak_rss - base_rss) / base_rss
        warm_fds, warm_threads = after[0].fds, after[0].threads
        outcome.check(abs(drift) <= RSS_TOLERANCE, f"{name}: RSS moved {drift:+.1%} after warm-up")
        outcome.check(peak <= RSS_TOLERANCE, f"{name}: RSS peaked {peak:+.1%} over its post-warm-up level")
        outcome.check(idle[name].fds <= warm_fds + SLACK, f"{name}: fds grew {warm_fds} -> {idle[name].fds}")
        outcome.check(
            idle[name].threads <= warm_threads + SLACK,
            f"{name}: threads grew {warm_threads} -> {idle[name].threads}",
        )
        figures["services"][name] = {
            "rss_mib_after_warmup": round(base_rss / 2**20, 1),
            "rss_mib_end": round(end_rss / 2**20, 1),
            "rss_mib_peak": round(peak_rss / 2**20, 1),
            "rss_drift": round(drift, 4),
            "rss_peak_over_baseline": round(peak, 4),
            "fds_after_warmup": warm_fds,
            "fds_idle_after": idle[name].fds,
            "threads_after_warmup": warm_threads,
            "threads_idle_after": idle[name].threads,
            "samples": len(after),
        }
    figures["rss_tolerance"] = RSS_TOLERANCE
    figures["warmup_requests"] = warm_at
    outcome.figures = figures
    return outcome.finish()
