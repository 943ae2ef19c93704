"""``ModelRepository``: the model repository (docs/architecture.md) as the gateway can read it, read-only.

The gateway talks to model servers only through TF Serving's APIs; reading the repository is an extra that
works when the model directories are readable from the gateway (same ``base_path`` in ``models.config``, e.g.
the models volume mounted into the gateway's container too). Relative base paths are relative to the servers'
working directory: the repository root locally, ``/`` in the containers - tried in that order.

Contract for files of a version (``version_file``): only models with a configured base path, only integer
versions, only the published file names the callers ask for; the resolved path must stay under the model's
resolved base path (a symlink leading out of it is refused), so no request can read anything else.

``card_contract`` gives the ``contract`` section of a version's model card (``model_card.json``), or None when
there is no readable card or it has none: the gateway's contract for versions served without the ``contract``
signature (a TF Lite version, gateway.upstream.contract).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.errors import ModelFileNotFound

__all__ = ["CARD_FILE", "ModelRepository"]

CARD_FILE = "model_card.json"


class ModelRepository:
    """Model name -> base path (from the servers' models.config); numeric version folders beneath."""

    def __init__(self, base_paths: dict[str, str]) -> None:
        self._base_paths = dict(base_paths)

    def set_base_path(self, name: str, raw: str | None) -> None:
        """Configure (or, with None, forget) a model added or removed at run time."""
        if raw is None:
            self._base_paths.pop(name, None)
        else:
            self._base_paths[name] = raw

    def base_path(self, name: str) -> Path | None:
        """The model's folder as seen from the gateway, or None when not configured or not readable."""
        raw = self._base_paths.get(name)
        if raw is None:
            return None
        path = Path(raw)
        candidates = [path] if path.is_absolute() else [Path.cwd() / path, Path("/") / path]
        return next((c for c in candidates if c.is_dir()), None)

    def versions(self, name: str) -> list[int] | None:
        """Numeric version folders on disk (staging ignored), or None when the folder is unreadable."""
        base = self.base_path(name)
        if base is None:
            return None
        try:
            return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())
        except OSError:
            return None

    def version_file(self, name: str, version: int, filename: str) -> Path:
        """``<base>/<version>/<filename>``, or ModelFileNotFound (see the module docstring)."""
        if version < 0:
            raise ModelFileNotFound(name, version, filename, "versions are non-negative integers")
        base = self.base_path(name)
        if base is None:
            raise ModelFileNotFound(
                name, version, filename, "the model repository is not readable from the gateway"
            )
        root = base.resolve()
        path = (root / str(version) / filename).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ModelFileNotFound(name, version, filename, "no such file in the model repository")
        return path

    def card_contract(self, name: str, version: int) -> dict[str, Any] | None:
        """The ``contract`` object of ``<base>/<version>/model_card.json``, or None (module docstring)."""
        try:
            card = json.loads(self.version_file(name, version, CARD_FILE).read_bytes())
        except (ModelFileNotFound, OSError, ValueError):
            return None
        contract = card.get("contract") if isinstance(card, dict) else None
        return contract if isinstance(contract, dict) else None
