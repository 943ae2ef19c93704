"""The gRPC port's TLS (``--ssl_config_file``, TF Serving's ``SSLConfig`` text proto from ``ssl_config.proto``):
the server's PEM key and certificate, an optional CA for client certificates and whether clients must present
one - ``BuildServerCredentials`` in TF Serving's ``server.cc``, for the TCP port and the UNIX socket alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from modelserver.errors import ConfigError
from modelserver.textproto import Field, declare_message, parse_text

__all__ = ["SslConfig", "parse_ssl_config"]


def _declare(f: Any, add: Any) -> None:
    ssl = f.message_type.add(name="SSLConfig")
    add(ssl, "server_key", 1, Field.TYPE_STRING)
    add(ssl, "server_cert", 2, Field.TYPE_STRING)
    add(ssl, "custom_ca", 3, Field.TYPE_STRING)
    add(ssl, "client_verify", 4, Field.TYPE_BOOL)


SSLConfigProto = declare_message("SSLConfig", _declare)


@dataclass(frozen=True)
class SslConfig:
    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server_key.encode(), self.server_cert.encode())],
            root_certificates=self.custom_ca.encode() or None,
            require_client_auth=self.client_verify,
        )


def parse_ssl_config(text: str, source: str = "<text>") -> SslConfig:
    proto = parse_text(text, SSLConfigProto(), "SSL config file", source)
    if not proto.server_key or not proto.server_cert:
        raise ConfigError(
            f"SSL config file {source}: server_key and server_cert (PEM text) are both required"
        )
    if proto.client_verify and not proto.custom_ca:
        raise ConfigError(
            f"SSL config file {source}: client_verify needs custom_ca, the CA of client certificates"
        )
    return SslConfig(proto.server_key, proto.server_cert, proto.custom_ca, proto.client_verify)
