"""OpenTelemetry traces of the gateway's requests: off unless configured, a no-op when off.

Spans (when on): ``gateway.predict`` / ``gateway.classify`` (one ``:predict`` / ``:classify`` request, the
trace's root unless the caller sent a W3C ``traceparent``), its children ``upload decode`` (reading the body: multipart or JSON),
``preprocessing`` (uploads into tensors) and ``upstream call`` (the Predict to the model server, whose
gRPC metadata carries the ``traceparent`` so the model server's spans join the same trace).

Configuration (``gateway.settings``): ``GATEWAY_OTLP_ENDPOINT`` exports over OTLP/gRPC (needs the
``otlp`` extra: ``pip install tfserve-stack[otlp]``); ``GATEWAY_TRACE_FILE`` writes each span as one JSON
line (for tests and debugging); ``GATEWAY_TRACE_SAMPLE_RATIO`` is the share of requests traced (parent-based:
a caller's sampled ``traceparent`` is always followed; unset: ``OTEL_TRACES_SAMPLER``, else 1 %,
``guard.tracing.sampler``). Neither set: ``TRACER`` stays None and each call site costs one module
attribute check (``span`` hands back a shared no-op context manager).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

from guard.tracing import tracer_provider

__all__ = ["TRACER", "configure", "flush", "metadata", "span"]

TRACER: trace.Tracer | None = None
_provider: TracerProvider | None = None
_OFF = contextlib.nullcontext()


def configure(
    otlp_endpoint: str = "",
    trace_file: str = "",
    service: str = "tfserve-gateway",
    sample_ratio: float | None = None,
) -> None:
    """Turn tracing on when an exporter is configured (idempotent per process); roots are sampled at
    ``sample_ratio`` (``GATEWAY_TRACE_SAMPLE_RATIO``), else as ``OTEL_TRACES_SAMPLER`` says, else 1 %."""
    global TRACER, _provider
    _provider = tracer_provider(service, otlp_endpoint, trace_file, sample_ratio)
    TRACER = None if _provider is None else _provider.get_tracer("gateway")


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span under the current one; a shared no-op when tracing is off."""
    if TRACER is None:
        return _OFF
    return TRACER.start_as_current_span(name, attributes=attributes or None)


@contextlib.contextmanager
def root(name: str, headers: Any, **attributes: Any) -> Iterator[None]:
    """A request's span, child of the caller's ``traceparent`` header when it sent one (tracing on only)."""
    assert TRACER is not None
    with TRACER.start_as_current_span(
        name, context=propagate.extract(headers), kind=trace.SpanKind.SERVER, attributes=attributes or None
    ):
        yield


def metadata() -> list[tuple[str, str]] | None:
    """gRPC metadata carrying the current span's ``traceparent``; None when tracing is off."""
    if TRACER is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def flush() -> None:
    """Export the spans still buffered (the provider also does at interpreter exit)."""
    if _provider is not None:
        _provider.force_flush()
