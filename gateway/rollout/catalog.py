"""``Catalog``: which models the gateway offers, which models.config holds each one's desired state, and the
model repository as the gateway can read it.

Models come from the models.config files (``GATEWAY_MODEL_CONFIG_FILE`` plus ``GATEWAY_MODEL_CONFIG_FILES``,
one file per group of model servers that poll it), else from ``GATEWAY_MODELS`` (admin off). A model named in
two files is refused at start. The list changes at run time only through the files: ``add`` / ``remove``
after this gateway's own admin change (gateway.rollout.registry), ``sync`` when the reconciler re-reads a
file another gateway changed; ``on_change`` listeners (the gateway's contract and canary caches) hear of
each.

Replicas of a model added at run time (``replica_targets``): every server that polls its file loads it, so
they are the replicas of the file's other models (unless ``GATEWAY_MODEL_REPLICAS`` / ``MODEL_SERVERS`` name
the model itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from google.protobuf import text_format

from gateway.errors import Conflict, ModelNotFound
from gateway.rollout.desired import Desired, DesiredStateInvalid, DesiredStore
from gateway.rollout.repository import ModelRepository
from gateway.settings import Settings
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["Catalog", "load_model_config"]

log = logging.getLogger("gateway.catalog")


def load_model_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    """Parse TF Serving's ``models.config`` (text format ModelServerConfig)."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), config)
    except (OSError, text_format.ParseError) as exc:
        raise ValueError(f"cannot read model config {path}: {exc}") from exc
    return config


def _base_path(entry_text: str) -> str:
    entry = model_server_config_pb2.ModelConfig()
    text_format.Parse(entry_text, entry)
    return str(entry.base_path)


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.stores: list[DesiredStore] = []
        self._store_of: dict[str, DesiredStore] = {}
        self._leaving: set[str] = set()  # removed from their file, replicas still unloading
        self._listeners: list[Callable[[str], None]] = []
        base_paths: dict[str, str] = {}
        for path in settings.config_files():
            config = load_model_config(path)
            store = DesiredStore(path, self._known)
            self.stores.append(store)
            for entry in config.model_config_list.config:
                if entry.name in self._store_of:
                    raise ValueError(f"model {entry.name!r} is in two model config files ({path})")
                self._store_of[entry.name] = store
                base_paths[entry.name] = entry.base_path
        self.repository = ModelRepository(base_paths)
        for store in self.stores:
            self._check_replicas(store)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(name)`` whenever a model is added or removed (caches about it are stale)."""
        self._listeners.append(listener)

    def _changed(self, name: str) -> None:
        for listener in self._listeners:
            listener(name)

    def add(self, name: str, base_path: str, store: DesiredStore) -> None:
        """Offer ``name`` (its entry is in ``store``'s file now)."""
        self._leaving.discard(name)
        self._store_of[name] = store
        self.repository.set_base_path(name, base_path)
        self._changed(name)

    def retire(self, name: str) -> None:
        """Stop offering ``name`` to requests while its replicas unload it (``remove`` follows)."""
        self._leaving.add(name)

    def remove(self, name: str) -> None:
        """Stop offering ``name`` (its entry left its file)."""
        self._leaving.discard(name)
        self._store_of.pop(name, None)
        self.repository.set_base_path(name, None)
        self._changed(name)

    def sync(self, store: DesiredStore, desired: Desired) -> list[str]:
        """Take up models another gateway added to or removed from ``store``'s file; returns the changed."""
        changed = []
        for name, state in desired.models.items():
            if name not in self._store_of:
                self.add(name, _base_path(state.base), store)
                changed.append(name)
        for name in [n for n, s in self._store_of.items() if s is store and n not in desired.models]:
            self.remove(name)
            changed.append(name)
        return changed

    def replica_targets(self, name: str) -> list[str]:
        """Where the replicas of ``name`` are (module docstring)."""
        own = self._settings.model_replicas.get(name) or self._settings.model_servers.get(name)
        store = self._store_of.get(name)
        if own or store is None:
            return self._settings.replica_targets(name)
        peers = [self._settings.replica_targets(n) for n in self.models_in(store)]
        return list(dict.fromkeys(t for targets in peers for t in targets))

    def _known(self, name: str) -> list[int] | None:
        return self.repository.versions(name)

    def _check_replicas(self, store: DesiredStore) -> None:
        names = self.models_in(store)
        groups = {tuple(self._settings.replica_targets(n)) for n in names}
        if len(groups) > 1:
            log.warning(
                "%s lists models served by different servers (%s); servers polling it load all of them - "
                "give each group of servers its own file (GATEWAY_MODEL_CONFIG_FILES)",
                store.path,
                ", ".join(sorted(names)),
            )

    @property
    def enabled(self) -> bool:
        """Version admin works: the desired state lives in at least one models.config."""
        return bool(self.stores)

    def models(self) -> list[str]:
        if not self.stores:
            return list(self._settings.models)
        return [n for n in self._store_of if n not in self._leaving]

    def __contains__(self, name: object) -> bool:
        if not self.stores:
            return name in self._settings.models
        return name in self._store_of and name not in self._leaving

    def models_in(self, store: DesiredStore) -> list[str]:
        return [n for n, s in self._store_of.items() if s is store]

    def check_model(self, name: str) -> None:
        known = self.models()
        if (known or self.stores) and name not in known:
            raise ModelNotFound(name, known=known)

    def store_for(self, name: str) -> DesiredStore:
        if not self.enabled:
            raise Conflict("version admin needs GATEWAY_MODEL_CONFIG_FILE (the servers' models.config)")
        self.check_model(name)
        return self._store_of[name]

    def state_error(self, name: str) -> str | None:
        store = self._store_of.get(name)
        if store is None:
            return None
        try:
            store.read()
        except DesiredStateInvalid as exc:
            return exc.message
        return None
