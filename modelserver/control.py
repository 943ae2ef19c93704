"""ModelControl: who may change what the server serves through ``ModelService.HandleReloadConfigRequest``.

TF Serving answers that call from anyone who can reach the gRPC port, and the config it carries may unload
every model or load a SavedModel from any readable path (and a graph can read files). Here:

- ``--model_control_token`` (better: ``MODELSERVER_MODEL_CONTROL_TOKEN``): the call must carry gRPC metadata
  ``authorization: Bearer <token>``, else UNAUTHENTICATED. Unset: no token asked (TF Serving's behaviour).
- ``--enable_model_config_reload=false``: the call is refused (PERMISSION_DENIED); the config file still
  applies (``--model_config_file_poll_wait_seconds``).
- ``--allowed_model_base_paths`` (comma-separated; default: the folders holding the models configured at
  start): a reloaded config whose base path resolves (symlinks followed) outside them is PERMISSION_DENIED and
  nothing changes.

Immutable after start; ``authorize`` and ``check_entries`` are safe from any thread.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelserver.errors import PermissionDenied, Unauthenticated

__all__ = ["ModelControl", "default_roots"]


def default_roots(base_paths: Iterable[Path]) -> tuple[Path, ...]:
    """The folder holding each configured model (its own folder when that parent would be ``/``)."""
    roots: set[Path] = set()
    for path in base_paths:
        resolved = Path(path).resolve()
        parent = resolved.parent
        roots.add(resolved if parent == Path(parent.anchor) else parent)
    return tuple(sorted(roots))


@dataclass(frozen=True)
class ModelControl:
    token: str = ""
    reload_enabled: bool = True
    allowed_roots: tuple[Path, ...] | None = None  # None: any path (embedding, tests)

    def authorize(self, metadata: Iterable[tuple[str, Any]] | None) -> None:
        if not self.reload_enabled:
            raise PermissionDenied(
                "HandleReloadConfigRequest is disabled on this server (--enable_model_config_reload=false);"
                " change its --model_config_file instead"
            )
        if not self.token:
            return
        sent = ""
        for key, value in metadata or ():
            if key.lower() == "authorization":
                sent = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        scheme, _, credential = sent.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode("utf-8", "replace"), self.token.encode("utf-8")
        )
        if not ok:
            raise Unauthenticated(
                "HandleReloadConfigRequest needs gRPC metadata 'authorization: Bearer <token>' with this "
                "server's --model_control_token"
            )

    def check_entries(self, entries: Mapping[str, Any]) -> None:
        """Refuse a config naming a base path outside the allowed roots (before anything changes)."""
        if self.allowed_roots is None:
            return
        for name, entry in entries.items():
            path = Path(entry.base_path).resolve()
            if not any(path == root or root in path.parents for root in self.allowed_roots):
                raise PermissionDenied(
                    f"model {name}: base_path {entry.base_path} is outside the model roots this server "
                    "accepts (--allowed_model_base_paths)"
                )
