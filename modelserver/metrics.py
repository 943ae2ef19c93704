"""Prometheus metrics of one modelserver process, in its own registry.

Counted in the data plane (``modelserver.dataplane``) so gRPC and REST are measured the same way; the manager
counts loads/unloads and the batcher batch sizes and queue depth. ``render()`` gives the exposition body and
content type for the monitoring path (served by the REST adapter, as TF Serving does).

With ``--num_workers`` > 1 the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` for its workers: prometheus_client
then keeps every value in a per-process file there, and ``render()`` in any worker aggregates all of them
(``MultiProcessCollector``), so a scrape through whichever worker the connection reaches shows the server's
totals: counters and histograms summed over the workers (those of a worker that has exited stay counted),
queue depth summed over the live workers, available versions the minimum over the live workers (a version
counts once every worker serves it). Metric names and labels are the same as with one worker.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics", "render"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """All metric families. ``api`` is predict/classify/regress/multi_inference/metadata/status/reload;
    ``protocol`` is grpc/rest; ``status`` is the gRPC status name (``OK``, ``NOT_FOUND`` ...)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:  # long: one declaration per metric
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "modelserver_requests",
            "Requests by model, version, signature, api, protocol and status.",
            ["model", "version", "signature", "api", "protocol", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "modelserver_request_latency_seconds",
            "Request latency in the data plane.",
            ["model", "version", "signature", "api", "protocol", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.loads = Counter(
            "modelserver_model_loads", "Version loads by outcome.", ["model", "outcome"], registry=r
        )
        self.load_seconds = Histogram(
            "modelserver_model_load_seconds",
            "Time to load and warm a version.",
            ["model"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.unloads = Counter("modelserver_model_unloads", "Version unloads.", ["model"], registry=r)
        self.unload_seconds = Histogram(
            "modelserver_model_unload_seconds",
            "Time to unload a version.",
            ["model"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.scan_errors = Counter(
            "modelserver_model_scan_errors",
            "Polls that could not list a model's base path (kept serving), by errno name.",
            ["model", "error"],
            registry=r,
        )
        self.available_versions = Gauge(
            "modelserver_available_versions",
            "Versions currently AVAILABLE.",
            ["model"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.batch_size = Histogram(
            "modelserver_batch_size",
            "Rows per executed batch (after padding).",
            ["model", "signature"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_padding = Counter(
            "modelserver_batch_padding_rows",
            "Rows added to reach an allowed batch size.",
            ["model", "signature"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "modelserver_batch_queue_depth",
            "Tasks waiting in batching queues.",
            ["model", "signature"],
            registry=r,
            multiprocess_mode="livesum",
        )

    def render(self) -> tuple[bytes, str]:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        aggregated = CollectorRegistry()
        MultiProcessCollector(aggregated, directory)  # type: ignore[no-untyped-call]
        return generate_latest(aggregated), CONTENT_TYPE_LATEST


# The process-wide instance; tests may build their own ``Metrics()``.
METRICS = Metrics()


def render() -> tuple[bytes, str]:
    """(body, content type) of the process metrics in Prometheus text format."""
    return METRICS.render()
