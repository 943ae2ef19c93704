"""Prometheus metrics of the gateway (served at ``/metrics``).

- ``gateway_requests_total{route,method,status,model}`` and ``gateway_request_seconds{route,method,model}``:
  every HTTP request, labelled by the route TEMPLATE (``/v1/models/{name}:classify``), never the raw path, and
  by ``model``: the ``{name}`` path parameter when it is a configured model, "" otherwise (unknown names and
  routes without a model), so cardinality stays bounded.
- ``gateway_upstream_seconds{server,method}`` and ``gateway_upstream_errors_total{server,method,code}``:
each gRPC
  call to a model server (retries counted in ``gateway_upstream_retries_total``).
- ``gateway_errors_total{kind}``: error replies by kind (the ``code`` of the JSON error body).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One set of collectors per app, in its own registry (several apps in one test process never clash)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gateway_requests", "HTTP requests handled", ["route", "method", "status", "model"], registry=r
        )
        self.latency = Histogram(
            "gateway_request_seconds",
            "HTTP request latency",
            ["route", "method", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_seconds",
            "gRPC call latency to model servers",
            ["server", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "gRPC calls that failed", ["server", "method", "code"], registry=r
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries",
            "gRPC calls retried after UNAVAILABLE",
            ["server", "method"],
            registry=r,
        )
        self.errors = Counter("gateway_errors", "error replies by kind", ["kind"], registry=r)
