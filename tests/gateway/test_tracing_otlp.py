"""Traces over OTLP/gRPC (the ``otlp`` extra) into a real OTLP receiver on a loopback port: the gateway's
``GATEWAY_OTLP_ENDPOINT`` and the model server's ``OTEL_EXPORTER_OTLP_ENDPOINT``; off by default."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", reason="the otlp extra")
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from gateway import tracing
from modelserver.observe import tracing as server_tracing


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes]] = []  # (service, span name, trace id)

    def Export(self, request: Any, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"
            )
            for scope in resource_spans.scope_spans:
                self.spans.extend((service, s.name, s.trace_id) for s in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, str]]:
    service = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        tracing.configure()
        server_tracing.configure()
        server.stop(0)


def test_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("MODELSERVER_TRACE_FILE", raising=False)
    tracing.configure()
    server_tracing.configure()
    assert tracing.TRACER is None and server_tracing.TRACER is None
    assert tracing.metadata() is None
    with tracing.span("nothing") as span:
        assert span is None


def test_otlp_export_joins_one_trace(
    receiver: tuple[_Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, endpoint = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)  # OpenTelemetry's own variable
    tracing.configure(otlp_endpoint=endpoint, sample_ratio=1.0)
    server_tracing.configure()

    async def served() -> str:
        return "reply"

    with tracing.root("gateway.predict", {}), tracing.span("upstream call"):
        metadata = tracing.metadata()
        assert metadata is not None and metadata[0][0] == "traceparent"
        assert asyncio.run(server_tracing.traced("modelserver.Predict", metadata, served)) == "reply"
    tracing.flush()
    server_tracing.flush()
    names = {(s, n) for s, n, _ in service.spans}
    assert names == {
        ("tfserve-gateway", "gateway.predict"),
        ("tfserve-gateway", "upstream call"),
        ("tfserve-modelserver", "modelserver.Predict"),
    }
    assert len({t for _, _, t in service.spans}) == 1
