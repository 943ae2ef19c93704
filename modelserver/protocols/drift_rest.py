"""``GET /v1/models/{name}/drift`` on the REST port: the drift monitor's latest evaluation of each version
of the model (``DriftMonitor.report``: live vs reference histograms, PSI/KS per feature, the max PSI over
time), for the gateway's Monitor view. 404 for a model the server does not know. With ``--num_workers`` > 1
it is the report of the worker that answered; the Prometheus gauges aggregate all of them."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from modelserver.observe.drift import DriftMonitor

__all__ = ["with_drift_rest"]

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_DRIFT_PATH = re.compile(r"/v1/models/([^/]+)/drift", re.I)


def with_drift_rest(app: ASGIApp, drift: DriftMonitor, known: Callable[[str], bool]) -> ASGIApp:
    """``app`` with the drift report mounted beside it (every other request passes through)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = _DRIFT_PATH.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "GET":
            await app(scope, receive, send)
            return
        name = unquote(match.group(1))
        if known(name):
            status, payload = 200, drift.report(name)
        else:
            status, payload = 404, {"error": f"Servable not found for request: Latest({name})"}
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped
