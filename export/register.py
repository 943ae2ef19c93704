"""``register``: ask a running stack's gateway to serve a model just published (``publish ... --register``).

It is one admin call, ``PUT /v1/admin/models/{name}`` with the model's folder (README, "Add a model to a
running stack"): every model server that polls the gateway's models.config loads the model, and the call
returns once each one serves it. A model the stack serves already (409) needs nothing: its servers pick up
a new version folder by themselves, so that answer counts as done.

The token is the gateway's admin token (``GATEWAY_ADMIN_TOKEN``; ``make run`` keeps it in
``.run/admin-token``). The folder is sent as given: it must be the path the model servers see, under the
gateway's model roots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from export.errors import ExportError

__all__ = ["RegisterFailed", "register"]


class RegisterFailed(ExportError):
    """The gateway refused the model or could not be reached; the version stays published."""

    exit_code = 5

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"published, but the gateway did not add model {name!r}: {why}")


def register(
    gateway_url: str,
    token: str,
    name: str,
    base_path: str | Path,
    *,
    version_policy: dict[str, Any] | None = None,
    config_file: str | None = None,
    timeout: float = 300.0,
) -> str:
    """Add ``name`` to the stack behind ``gateway_url``; returns ``"added"`` or ``"served already"``."""
    body: dict[str, Any] = {"base_path": str(base_path)}
    if version_policy is not None:
        body["model_version_policy"] = version_policy
    if config_file is not None:
        body["config_file"] = config_file
    url = f"{gateway_url.rstrip('/')}/v1/admin/models/{name}"
    try:
        reply = httpx.put(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RegisterFailed(
            name, f"{gateway_url} did not answer ({exc.__class__.__name__}: {exc})"
        ) from None
    if reply.status_code == 201:
        return "added"
    try:
        error = reply.json()["error"]
        kind, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "", reply.text[:200]
    if reply.status_code == 409 and kind == "conflict" and "exists already" in message:
        return "served already"
    raise RegisterFailed(name, f"HTTP {reply.status_code} {message}")
