"""OpenTelemetry traces of the model server's inference calls: off unless configured, a no-op when off.

A traced call is one span (kind SERVER) named after its API - ``modelserver.Predict``,
``modelserver.Classify``, ``modelserver.Regress`` (TF Serving's gRPC and REST) or ``modelserver.ModelInfer``
(OIP's gRPC and REST) - the child of the caller's W3C
``traceparent`` (gRPC metadata, or the REST port's HTTP header) so a gateway upload and its model server
work share one trace, with children built from the runtime's timings (``runtime.batching.RUN_TRACE``):
``queue wait`` (queued until its batch ran), ``session run`` (attribute ``batch_size``: the padded batch it
ran in, absent when the call was not batched) and ``response encoding`` (the run's end until the reply
message was built). Calls the batcher splits (larger than ``max_batch_size``) get no children.

Configuration: ``--otlp_endpoint`` or OpenTelemetry's own ``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP/gRPC, the
``otlp`` extra), or ``MODELSERVER_TRACE_FILE`` (each span as one JSON line; tests, debugging). None set:
``TRACER`` stays None and each call costs one module attribute check. Sampling is parent-based: a caller's
``traceparent`` decides; calls without one (roots) are traced at ``--trace_sample_ratio``, else as
``OTEL_TRACES_SAMPLER``/``_ARG`` say, else at ``guard.tracing.DEFAULT_SAMPLE_RATIO`` (1 %). With a ratio
(the flag or the default) the decision is taken here before any OpenTelemetry work - a call not traced costs a
header look-up and one random number, not an unrecorded span (17 us measured) - and the provider follows it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

from guard.tracing import DEFAULT_SAMPLE_RATIO, tracer_provider
from modelserver.runtime.batching import RUN_TRACE, RunTrace

__all__ = ["TRACER", "around", "configure", "flush", "traced"]

T = TypeVar("T")
TRACER: trace.Tracer | None = None
_provider: TracerProvider | None = None
_root_ratio: float | None = None  # roots' sampling ratio when traced() decides (see configure)
TRACE_FILE_ENV = "MODELSERVER_TRACE_FILE"


def configure(
    otlp_endpoint: str = "", service: str = "tfserve-modelserver", sample_ratio: float | None = None
) -> None:
    """Turn tracing on when an exporter is configured: ``otlp_endpoint`` (the flag), else
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``MODELSERVER_TRACE_FILE`` adds the JSON-lines file. ``sample_ratio``:
    ``--trace_sample_ratio`` (see ``guard.tracing.sampler``)."""
    global TRACER, _provider, _root_ratio
    endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    ratio = sample_ratio
    if ratio is None and not os.environ.get("OTEL_TRACES_SAMPLER"):
        ratio = DEFAULT_SAMPLE_RATIO
    # with a ratio, traced() samples the roots and the provider records what it lets through (parent-based)
    _root_ratio = ratio
    trace_file = os.environ.get(TRACE_FILE_ENV, "")
    _provider = tracer_provider(service, endpoint, trace_file, None if ratio is None else 1.0)
    TRACER = None if _provider is None else _provider.get_tracer("modelserver")


def _chosen(traceparent: str | None, ratio: float) -> bool:
    """Whether a call is traced: the sampled flag of the caller's W3C ``traceparent``, else ``ratio`` of roots."""
    if traceparent is not None:
        try:
            return bool(int(traceparent.rsplit("-", 1)[-1][:2], 16) & 1)
        except ValueError:
            pass  # malformed: OpenTelemetry ignores it too, so the call is a root
    return random.random() < ratio


async def traced(name: str, carrier: Iterable[tuple[str, Any]], call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` in a span continuing the caller's trace (``carrier``: gRPC metadata or HTTP headers)."""
    assert TRACER is not None
    tracer = TRACER
    headers = {str(k).lower(): str(v) for k, v in carrier if isinstance(v, str)}
    if _root_ratio is not None and not _chosen(headers.get("traceparent"), _root_ratio):
        return await call()
    runs: RunTrace = []
    token = RUN_TRACE.set(runs)
    try:
        with tracer.start_as_current_span(
            name, context=propagate.extract(headers), kind=trace.SpanKind.SERVER
        ) as parent:
            reply = await call()
            done = time.time_ns()
            if not parent.is_recording():  # sampled out (OTEL_TRACES_SAMPLER): no children either
                return reply
            parent.set_attribute("session_runs", len(runs))
            for queued, batch, began, ended in runs:
                if began > queued:
                    tracer.start_span("queue wait", start_time=queued).end(end_time=began)
                attributes = {"batch_size": batch} if batch else None
                tracer.start_span("session run", start_time=began, attributes=attributes).end(end_time=ended)
            if runs:
                tracer.start_span("response encoding", start_time=runs[-1][3]).end(end_time=done)
            return reply
    finally:
        RUN_TRACE.reset(token)


async def around(name: str, carrier: Iterable[tuple[str, Any]], call: Callable[[], Awaitable[T]]) -> T:
    """``call``, in a ``traced`` span when tracing is on."""
    if TRACER is None:
        return await call()
    return await traced(name, carrier, call)


def flush() -> None:
    """Export the spans still buffered (the provider also does at interpreter exit)."""
    if _provider is not None:
        _provider.force_flush()
