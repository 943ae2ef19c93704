"""``python -m gateway``: serve the gateway with uvicorn (settings from ``GATEWAY_*``, see
gateway.settings)."""

from __future__ import annotations

import json
import logging
import sys

import uvicorn
from pydantic import ValidationError

from gateway.settings import get_settings
from guard.descriptors import connection_budget
from guard.heap import freeze_heap, return_large_allocations
from guard.http import HttpLimits, protocol_class


def _error_body(code: str, message: str) -> bytes:
    from gateway.errors import error_body

    return json.dumps(error_body(code, message)).encode()


def main() -> int:
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"gateway: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from gateway.app import create_app

    try:
        app = create_app(settings)
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    freeze_heap()  # after the app and its imports: see guard.heap
    return_large_allocations()  # what one request decodes or holds goes back when it is done
    limits = HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
        body_deadline=settings.body_deadline_seconds,
        max_connections=connection_budget(settings.max_connections, 1),  # 503 past it (guard.http)
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # X-Forwarded-For names the client only when a configured proxy sent it (uvicorn's own default
        # trusts 127.0.0.1, so any local client could pick the address the rate limit keys on).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        http=protocol_class(limits, _error_body, "application/json"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
