"""Browser hardening: security headers on every reply and a Swagger UI served from the gateway itself.

- ``SecurityHeaders`` (pure ASGI): ``Content-Security-Policy`` (scripts, styles, fetches only from the
  gateway; ``frame-ancestors 'none'`` so the console, where the admin token is pasted, cannot be framed),
  ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (older browsers), ``Referrer-Policy``.
  ``/docs`` gets the same policy plus its one inline start-up script.
- ``add_docs(app)``: ``/docs`` with Swagger UI's assets from the ``swagger-ui-bundle`` package under
  ``/docs/assets`` - no CDN, so it works offline and trusts no third party.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONSOLE_POLICY", "DOCS_PATH", "SecurityHeaders", "add_docs"]

DOCS_PATH = "/docs"
CONSOLE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI starts from one inline script FastAPI writes; everything else is served from here.
_DOCS_POLICY = CONSOLE_POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


def _headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]


_CONSOLE_HEADERS = _headers(CONSOLE_POLICY)
_DOCS_HEADERS = _headers(_DOCS_POLICY)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _DOCS_HEADERS if scope.get("path", "").startswith(DOCS_PATH) else _CONSOLE_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (n, v) for n, v in extra if n not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _assets() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` from local assets (create the app with ``docs_url=None``)."""
    assets = _assets()
    if assets is None:  # the package is missing: no docs page rather than one that calls a CDN
        return
    app.mount(f"{DOCS_PATH}/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_PATH}/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_PATH}/assets/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_PATH}/assets/favicon-32x32.png",
        )
