"""The OpenTelemetry set-up both services share (the gateway never imports the model server, so it lives
here): a tracer provider with the exporters configured - OTLP/gRPC (the ``otlp`` extra) and/or one JSON line
per finished span in a file (tests, debugging) - or None when neither is, so tracing costs nothing.

Sampling (``sampler``) is parent-based, so a caller's decision carried in its ``traceparent`` holds (a gateway
that sampled a request gets the model server's spans too, and one that did not, none): a root is sampled at
the service's ratio setting (``--trace_sample_ratio``, ``GATEWAY_TRACE_SAMPLE_RATIO``) if given, else as
OpenTelemetry's ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` say, else at ``DEFAULT_SAMPLE_RATIO``."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio, Sampler

__all__ = ["DEFAULT_SAMPLE_RATIO", "JsonLinesExporter", "sampler", "span_record", "tracer_provider"]

# Share of root requests traced when nothing is configured: tracing every request cost 0.43 of gRPC c64
# throughput (bench/results/ab-traces-*.json); a caller's sampled traceparent is always followed.
DEFAULT_SAMPLE_RATIO = 0.01


class JsonLinesExporter(SpanExporter):
    """Each finished span as one JSON line (name, trace and span ids, parent id, times, attributes)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_record(s)) + "\n" for s in spans]
        with self._lock, open(self._path, "a", encoding="utf-8") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS


def span_record(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.context
    return {
        "name": s.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent else None,
        "start": s.start_time,
        "end": s.end_time,
        "attributes": dict(s.attributes or {}),
        "service": str(s.resource.attributes.get("service.name", "")),
    }


def sampler(ratio: float | None = None) -> Sampler | None:
    """Parent-based sampling of roots at ``ratio`` if given; None (the SDK then reads ``OTEL_TRACES_SAMPLER``
    and ``OTEL_TRACES_SAMPLER_ARG``) when that variable is set; else at ``DEFAULT_SAMPLE_RATIO``."""
    if ratio is None and os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBasedTraceIdRatio(DEFAULT_SAMPLE_RATIO if ratio is None else ratio)


def tracer_provider(
    service: str, otlp_endpoint: str = "", trace_file: str = "", sample_ratio: float | None = None
) -> TracerProvider | None:
    """A provider exporting to what is configured, or None when nothing is (tracing off); roots are sampled
    as ``sampler(sample_ratio)`` says."""
    if not otlp_endpoint and not trace_file:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), sampler=sampler(sample_ratio)
    )
    if trace_file:
        provider.add_span_processor(
            BatchSpanProcessor(JsonLinesExporter(trace_file), schedule_delay_millis=200)
        )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider
