"""``python -m gateway``: serve the gateway with uvicorn (settings from ``GATEWAY_*``, see
gateway.settings)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from gateway.settings import get_settings


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
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
