"""Reading what a server reports about itself: Prometheus counters (answers by gRPC status, the check that
h2load cannot do) and the model server's log lines (the loader's RAM estimate)."""

from __future__ import annotations

import re
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from bench.procs import http_get

__all__ = ["failures", "ram_estimates", "request_counts"]

_ESTIMATE = re.compile(r"model (\S+) version (\d+): estimated RAM ([\d.]+) MiB")


def request_counts(url: str, family: str = "modelserver_requests") -> Counter[tuple[str, str, str]] | None:
    """Counter of (api, protocol, status) -> requests from a Prometheus endpoint; None if not served."""
    status, body = http_get(url, timeout=5)
    if status != 200:
        return None
    counts: Counter[tuple[str, str, str]] = Counter()
    for metric in text_string_to_metric_families(body.decode("utf-8", errors="replace")):
        if metric.name != family:
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                key = (labels.get("api", ""), labels.get("protocol", ""), labels.get("status", ""))
                counts[key] += int(sample.value)
    return counts


def failures(
    before: Counter[tuple[str, str, str]] | None, after: Counter[tuple[str, str, str]] | None, protocol: str
) -> tuple[int, int] | None:
    """(answered OK, answered with an error status) between two scrapes, for one protocol."""
    if before is None or after is None:
        return None
    delta = after - before
    ok = sum(n for (_, proto, status), n in delta.items() if proto == protocol and status == "OK")
    bad = sum(n for (_, proto, status), n in delta.items() if proto == protocol and status != "OK")
    return ok, bad


def ram_estimates(log_text: str) -> dict[tuple[str, int], int]:
    """(model, version) -> bytes, from the manager's "estimated RAM" log lines."""
    return {(m, int(v)): int(float(mib) * 2**20) for m, v, mib in _ESTIMATE.findall(log_text)}
