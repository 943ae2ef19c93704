"""``HotRoutes``: ``POST /v1/models/{name}:classify`` and ``:predict`` answered without FastAPI's router,
dependency solving and response-model validation - the per-request layers that cost an upload as much CPU as
decoding its image.

Contract:
- A request is taken here only when the route would accept its parameters unchanged: no ``root_path``, and
  every query parameter one the route declares, given once, in plain decimal (``k``, ``version``) or label form
  and within the route's bounds: ``gateway.routes.query.simple``, the same module whose ``Query``
  declarations the route uses. Anything else passes to the FastAPI app untouched, nothing read, and gets the
  route's own answer (its 422s among them).
- A taken request is answered by the route's own code (``classify_reply`` / ``predict_reply``: body reading,
  limits, preprocessing, traffic split) and its errors by the app's own exception handlers, so status, body and
  headers are the route's; the reply is the route's ``response_model`` serialised as FastAPI does
  (``dump_json``, by alias). Errors without a handler propagate, as they do from the route.
- Sits innermost among the app's middlewares: security headers, metrics (``scope["route"]`` and
  ``path_params`` are filled in as the router would), the rate limit and the body limit all apply unchanged.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.deps import Services
from gateway.routes import query
from gateway.routes.inference import classify_reply, predict_reply

__all__ = ["HotRoutes"]

_PATH = re.compile(r"/v1/models/([^/]+):(classify|predict)")
_ALLOWED = {"classify": frozenset({"k", "version", "label"}), "predict": frozenset({"version", "label"})}
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class HotRoutes:
    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        routes: Mapping[str, APIRoute],
        handlers: Mapping[Any, Handler],
    ) -> None:
        self.app = app
        self.services = services
        self.routes = {verb: routes[f"/v1/models/{{name}}:{verb}"] for verb in _ALLOWED}
        # by exception class, as Starlette's ExceptionMiddleware keeps them (the catch-all is not among them:
        # ServerErrorMiddleware answers what propagates, from here as from the route)
        self.handlers = {
            key: h for key, h in handlers.items() if isinstance(key, type) and key is not Exception
        }
        self.taken = 0  # requests answered here rather than passed on (tests read it)

    def _handler(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = params = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            match = _PATH.fullmatch(scope["path"])
            if match is not None:
                params = query.simple(scope["query_string"], _ALLOWED[match[2]])
        if match is None or params is None:
            await self.app(scope, receive, send)
            return
        self.taken += 1
        name, verb = match[1], match[2]
        scope["route"] = self.routes[verb]
        scope["path_params"] = {"name": name}
        request = Request(scope, receive)
        reply: BaseModel
        try:
            if verb == "classify":
                reply = await classify_reply(
                    self.services, name, request, params.k, params.version, params.label
                )
            else:
                reply = await predict_reply(self.services, name, request, params.version, params.label)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            answered = handler(request, exc)
            response = await answered if inspect.isawaitable(answered) else answered
        else:
            response = Response(
                reply.__pydantic_serializer__.to_json(reply, by_alias=True), media_type="application/json"
            )
        await response(scope, receive, send)
