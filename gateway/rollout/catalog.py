"""``Catalog``: which models the gateway offers, which models.config holds each one's desired state, and the
model repository as the gateway can read it. Built once at start; reads only.

Models come from the models.config files (``GATEWAY_MODEL_CONFIG_FILE`` plus ``GATEWAY_MODEL_CONFIG_FILES``,
one file per group of model servers that poll it), else from ``GATEWAY_MODELS`` (admin off). A model named in
two files is refused at start.
"""

from __future__ import annotations

import logging
from pathlib import Path

from google.protobuf import text_format

from gateway.errors import Conflict, ModelNotFound
from gateway.rollout.desired import DesiredStateInvalid, DesiredStore
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


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.stores: list[DesiredStore] = []
        self._store_of: dict[str, DesiredStore] = {}
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
        return list(self._store_of) if self._store_of else list(self._settings.models)

    def models_in(self, store: DesiredStore) -> list[str]:
        return [n for n, s in self._store_of.items() if s is store]

    def check_model(self, name: str) -> None:
        known = self.models()
        if known and name not in known:
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
