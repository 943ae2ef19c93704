"""``Window``: the sliding window of one canary's outcomes and the verdict of its automatic-rollback rules
(the error-rate rule and the per-client, per-row latency rule). The rules are described in
``gateway.rollout.traffic``'s module docstring, which applies them."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from gateway.settings import Settings

__all__ = ["CLIENT_SAMPLES", "MAX_CLIENTS", "MIN_CLIENT_SAMPLES", "P99_MIN_SAMPLES", "Window"]

P99_MIN_SAMPLES = 100  # below that a p99 is just the slowest request (one cold cache decides it)
CLIENT_SAMPLES = 50  # costs kept per client and side: no client holds more of the latency evidence
MIN_CLIENT_SAMPLES = 3  # a client's p99 needs this many of its requests
MAX_CLIENTS = 256  # clients kept per side (least recently seen dropped): bounded whatever the clients


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else 0.0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2] if ordered else 0.0


@dataclass
class Window:
    """The last ``size`` outcomes (ok, seconds) of each side of one canary, and each client's last
    ``CLIENT_SAMPLES`` costs per row on each side (the latency rule: gateway.rollout.traffic's docstring)."""

    size: int
    stable: deque[tuple[bool, float, str]] = field(default_factory=deque)
    canary: deque[tuple[bool, float, str]] = field(default_factory=deque)
    costs: dict[str, OrderedDict[str, deque[float]]] = field(
        default_factory=lambda: {"canary": OrderedDict(), "stable": OrderedDict()}
    )

    def add(self, arm: str, ok: bool, seconds: float, *, rows: int = 1, client: str = "") -> None:
        side = self.canary if arm == "canary" else self.stable
        side.append((ok, seconds, client))
        while len(side) > self.size:
            side.popleft()
        if not ok:
            return  # a failure is the error rule's; its latency is not a cost
        clients = self.costs["canary" if arm == "canary" else "stable"]
        costs = clients.pop(client, None) or deque(maxlen=CLIENT_SAMPLES)
        costs.append(seconds / max(1, rows))
        clients[client] = costs
        while len(clients) > MAX_CLIENTS:
            clients.popitem(last=False)

    def _client_costs(self, arm: str) -> dict[str, float]:
        """Each client's median cost per row (a median: requests the gateway or the server merged with
        someone else's expensive ones are that client's outliers, not its typical cost)."""
        clients = self.costs[arm].items()
        return {c: _median(list(q)) for c, q in clients if len(q) >= MIN_CLIENT_SAMPLES}

    def figures(self, settings: Settings | None = None) -> dict[str, float]:
        def rate(side: deque[tuple[bool, float, str]]) -> float:
            return sum(1 for ok, _, _ in side if not ok) / len(side) if side else 0.0

        canary, stable = self._client_costs("canary"), self._client_costs("stable")
        reference = _median(list(stable.values()))
        found = {
            "canary_requests": len(self.canary),
            "stable_requests": len(self.stable),
            "canary_error_rate": round(rate(self.canary), 4),
            "stable_error_rate": round(rate(self.stable), 4),
            "canary_p99_seconds": round(_p99([s for _, s, _ in self.canary]), 4),
            "stable_p99_seconds": round(_p99([s for _, s, _ in self.stable]), 4),
            "failing_clients": len({c for ok, _, c in self.canary if not ok}),
            "canary_clients": len(canary),
            "stable_clients": len(stable),
            "canary_seconds_per_row": round(_median(list(canary.values())), 6),
            "stable_seconds_per_row": round(reference, 6),
        }
        if settings is not None:
            bound = reference * settings.canary_max_p99_ratio + settings.canary_p99_slack_seconds
            found["regressed_clients"] = sum(1 for cost in canary.values() if cost > bound)
        return found

    def verdict(self, settings: Settings) -> str | None:
        """Why the candidate must go (``error_rate`` or ``latency``), or None."""
        if len(self.canary) < settings.canary_min_requests:
            return None
        f = self.figures(settings)
        # a few clients never decide: GATEWAY_CANARY_MIN_CLIENTS of them (or all, when there are fewer)
        clients = len({c for _, _, c in self.canary})
        if f["canary_error_rate"] - f["stable_error_rate"] > settings.canary_max_error_rate_delta and f[
            "failing_clients"
        ] >= min(settings.canary_min_clients, clients):
            return "error_rate"
        enough = max(settings.canary_min_requests, P99_MIN_SAMPLES)
        if min(len(self.canary), len(self.stable)) < enough or not f["stable_clients"]:
            return None
        regressed = f["regressed_clients"]
        if (
            regressed >= min(settings.canary_min_clients, f["canary_clients"])
            and regressed * 2 > f["canary_clients"]
        ):
            return "latency"
        return None
