"""The gRPC port's connection budget keeps connections x streams per connection within MAX_OPEN_STREAMS
(issue 25: grpc-core keeps memory per open stream, so a flood of idle streams over many connections is
bounded only by their product)."""

from __future__ import annotations

from modelserver.process.grpc_port import grpc_connections
from modelserver.protocols.tfs.grpc_service import MAX_CONCURRENT_STREAMS, MAX_OPEN_STREAMS


def test_the_grpc_connection_budget_bounds_open_streams() -> None:
    assert grpc_connections(1000) * MAX_CONCURRENT_STREAMS == MAX_OPEN_STREAMS  # the default flag, capped
    assert grpc_connections(0) * MAX_CONCURRENT_STREAMS == MAX_OPEN_STREAMS  # "as many as fit", capped
    assert grpc_connections(8) == 8  # a lower --max_connections_per_port stays
