"""The gRPC server of one modelserver process, before its services are added: TF Serving's channel arguments
(``--grpc_channel_arguments`` last, as TF Serving), the per-port connection budget, the call admission
(``modelserver.protocols.admission``: a call holds a working slot once its request message is in), and its
addresses (``--port``, ``--grpc_socket_path``) with ``--ssl_config_file``'s credentials."""

from __future__ import annotations

import grpc

from modelserver.errors import ConfigError
from modelserver.process.options import ServerOptions, parse_channel_arguments
from modelserver.process.ssl_config import SslConfig
from modelserver.protocols.admission import CallAdmission, admit
from modelserver.protocols.tfs.grpc_service import (
    MAX_CONCURRENT_RPCS,
    MAX_CONCURRENT_STREAMS,
    MAX_OPEN_STREAMS,
    MAX_WAITING_CALLS,
    server_options,
)

__all__ = ["grpc_connections", "grpc_server", "listen"]


def grpc_connections(max_connections: int) -> int:
    """The gRPC port's connection budget: ``max_connections`` (0 = no bound) and at most
    ``MAX_OPEN_STREAMS / MAX_CONCURRENT_STREAMS``, so connections x streams stay bounded (issue 25: ~6-12 KiB
    of grpc-core memory per open stream, whatever admits the call)."""
    ceiling = MAX_OPEN_STREAMS // MAX_CONCURRENT_STREAMS
    return min(max_connections, ceiling) if max_connections > 0 else ceiling


def grpc_server(
    o: ServerOptions, *, reuse_port: bool, max_connections: int
) -> tuple[grpc.aio.Server, CallAdmission | None]:
    channel_options = dict(
        server_options(
            o.max_request_bytes, reuse_port=reuse_port, max_connections=grpc_connections(max_connections)
        )
    )
    channel_options.update(parse_channel_arguments(o.grpc_channel_arguments))
    admission, cap = admit(
        o.grpc_max_threads or MAX_CONCURRENT_RPCS, MAX_WAITING_CALLS, o.grpc_request_message_timeout_seconds
    )
    server = grpc.aio.server(
        options=list(channel_options.items()),
        maximum_concurrent_rpcs=cap,
        interceptors=[admission] if admission else None,
    )
    return server, admission


def _addresses(o: ServerOptions) -> list[str]:
    return ([f"{o.bind_host}:{o.port}"] if o.port else []) + (
        [f"unix:{o.grpc_socket_path}"] if o.grpc_socket_path else []
    )


def listen(server: grpc.aio.Server, o: ServerOptions, ssl: SslConfig | None) -> list[str]:
    """Add every address of ``o`` to ``server``; ``ConfigError`` when one cannot be bound. Returns them."""
    credentials = ssl.credentials() if ssl else None
    addresses = _addresses(o)
    try:
        for address in addresses:
            if credentials is None:
                server.add_insecure_port(address)
            else:
                server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on gRPC port {o.port}: {exc}") from None
    return addresses
