"""``python -m devtools.otlp_sink PORT``: a minimal OTLP/gRPC trace receiver on 127.0.0.1:PORT that counts the
spans it receives (printed every 5 s and at exit); for measuring tracing's cost with a real exporter
(``bench.ab --b-flags=--otlp_endpoint=http://127.0.0.1:PORT``). Needs the ``otlp`` extra."""

from __future__ import annotations

import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


def main(port: int) -> None:
    sink = Sink()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        while server.wait_for_termination(5):  # True: timed out, still serving
            print(f"spans received: {sink.spans}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print(f"spans received: {sink.spans}", flush=True)
        server.stop(0)


if __name__ == "__main__":
    main(int(sys.argv[1]))
