"""Prometheus metrics of the gateway (served at ``/metrics``).

- ``gateway_requests_total{route,method,status,model}`` and ``gateway_request_seconds{route,method,model}``:
  every HTTP request, labelled by the route TEMPLATE (``/v1/models/{name}:classify``), never the raw path, and
  by ``model``: the ``{name}`` path parameter when it is a configured model, "" otherwise (unknown names and
  routes without a model), so cardinality stays bounded.
- ``gateway_upstream_seconds{server,method}`` and ``gateway_upstream_errors_total{server,method,code}``:
each gRPC
  call to a model server (retries counted in ``gateway_upstream_retries_total``); ``gateway_replica_in_rotation
  {server}`` and ``gateway_replica_ejections_total{server,reason}``: client failover across replicas.
- ``gateway_errors_total{kind}``: error replies by kind (the ``code`` of the JSON error body).
- Version management (gateway.rollout.reconciler, gateway.rollout.operations, gateway.rollout.traffic):
  ``gateway_replicas_converged{model}`` (1 when every replica serves the desired versions),
  ``gateway_reconcile_repairs_total``, ``gateway_desired_state_refusals_total`` (a models.config that does not
  parse), ``gateway_desired_generation{file}``, ``gateway_canary_weight{model}``,
  ``gateway_canary_requests_total{model,arm,outcome}`` (arm stable|canary; outcome ok|failed|fallback),
  ``gateway_canary_rollbacks_total{model,reason}``, ``gateway_shadow_requests_total{model,outcome}``
  (agree|disagree|failed) and ``gateway_shadow_difference{model}`` (mean absolute difference of the answers).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One set of collectors per app, in its own registry (several apps in one test process never clash)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:  # long: one declaration per metric
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
        self.upload_log_written = Counter(
            "gateway_upload_log_records", "sampled raw uploads written (gateway.upload_log)", registry=r
        )
        self.upload_log_dropped = Counter(
            "gateway_upload_log_dropped",
            "sampled raw uploads not written: queue_full (the writer is behind) or write_error (the disk)",
            ["reason"],
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
        self.replica_in_rotation = Gauge(
            "gateway_replica_in_rotation",
            "1 while a listed replica takes inference calls, 0 while it is ejected (gateway.upstream.client)",
            ["server"],
            registry=r,
        )
        self.replica_ejections = Counter(
            "gateway_replica_ejections",
            "replicas taken out of rotation, by why (error, timeout, health)",
            ["server", "reason"],
            registry=r,
        )
        self.coalesced = Histogram(
            "gateway_coalesced_requests",
            "requests answered by one upstream Predict (gateway.upstream.coalesce)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.errors = Counter("gateway_errors", "error replies by kind", ["kind"], registry=r)
        self.replicas_converged = Gauge(
            "gateway_replicas_converged",
            "1 when every replica serves the desired versions",
            ["model"],
            registry=r,
        )
        self.reconcile_repairs = Counter(
            "gateway_reconcile_repairs", "replicas re-sent the desired config after drifting", registry=r
        )
        self.desired_refusals = Counter(
            "gateway_desired_state_refusals",
            "reconciler rounds that met a models.config that does not parse",
            registry=r,
        )
        self.desired_generation = Gauge(
            "gateway_desired_generation", "generation of the desired state last written", ["file"], registry=r
        )
        self.canary_weight = Gauge(
            "gateway_canary_weight", "percent of requests sent to the canary", ["model"], registry=r
        )
        self.canary_requests = Counter(
            "gateway_canary_requests",
            "requests of a canary split by side and outcome",
            ["model", "arm", "outcome"],
            registry=r,
        )
        self.canary_rollbacks = Counter(
            "gateway_canary_rollbacks", "canaries rolled back automatically", ["model", "reason"], registry=r
        )
        self.shadow_requests = Counter(
            "gateway_shadow_requests", "requests mirrored to a candidate", ["model", "outcome"], registry=r
        )
        self.shadow_difference = Histogram(
            "gateway_shadow_difference",
            "mean absolute difference between stable and candidate answers",
            ["model"],
            buckets=(0.0, 1e-6, 1e-4, 1e-3, 0.01, 0.1, 0.5, 1.0, 10.0, 100.0),
            registry=r,
        )
