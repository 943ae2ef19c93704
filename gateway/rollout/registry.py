"""``Registry``: add a model to a running stack, or remove one, on every replica.

Contract:
- ``add(name, base_path, policy)`` checks everything before it writes: ``name`` is a model name
  (``NAME``: a letter or digit, then letters, digits, ``_ . -``; at most 64), no model of that name exists
  (409), ``base_path`` resolves under one of the model roots (``GATEWAY_MODEL_ROOTS``, else the folders of the
  models.config files and of the models configured at start; symlinks resolved first) and holds
  at least one numeric version folder with a ``saved_model.pb``, and every version a ``specific`` policy names
  is among them (400). Then, as every admin change (gateway.rollout.operations): under the lock of its
  models.config (``config_file``: the file name of one of ``GATEWAY_MODEL_CONFIG_FILE(S)``, which picks the
  group of servers that will serve it; default the first) the file is read, checked and written (generation
  + 1); without the lock the full config goes to every replica that polls the file (``Reconciler.apply``,
  which never waits on a hung replica: those are reported as ``unconfirmed`` and converge from the file),
  waiting until the versions the policy serves are AVAILABLE on each one that answers. A version that fails
  to load restores the previous file (unless it changed since) and raises: nothing stays half added.
- ``remove(name)`` writes the file without the model (new requests get 404 at once), pushes it, and waits
  until no replica that answers serves a version of it any more. Each server unloads the model as TF Serving
  does: a version is unloaded once its in-flight requests have finished (the harness's QUIESCING state), so
  nothing in flight fails.
- The base path is written as given (the servers resolve it); the gateway checks it as it reads the
  repository (gateway.rollout.repository), so the models volume must be visible to the gateway as well.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, text_format

from gateway.errors import BadRequest, Conflict, GatewayError, NotFound, UpstreamError
from gateway.metrics import Metrics
from gateway.rollout.catalog import Catalog
from gateway.rollout.desired import Desired, DesiredStore, ModelState
from gateway.rollout.reconciler import LOAD_WAIT_SECONDS, Reconciler
from gateway.rollout.repository import ModelRepository
from gateway.settings import Settings
from gateway.upstream.client import ModelClient
from tfs_protos.tensorflow_serving.apis import get_model_status_pb2
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["NAME", "Registry"]

log = logging.getLogger("gateway.registry")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
END = get_model_status_pb2.ModelVersionStatus.END


def model_entry(name: str, base_path: str, raw: dict[str, Any] | None) -> model_server_config_pb2.ModelConfig:
    """The ModelConfig of a new model; ``raw`` is TF Serving's ``model_version_policy`` as JSON
    (``{"latest": {"num_versions": 2}}``, ``{"all": {}}``, ``{"specific": {"versions": [1, 3]}}``); none =
    ``latest 1``."""
    entry = model_server_config_pb2.ModelConfig(name=name, base_path=base_path, model_platform="tensorflow")
    policy = entry.model_version_policy
    if not raw:
        policy.latest.num_versions = 1
        return entry
    try:
        json_format.ParseDict(raw, policy)
    except json_format.ParseError as exc:
        raise BadRequest(
            f"model_version_policy is not TF Serving's ({exc}); send e.g. "
            '{"latest": {"num_versions": 1}}, {"all": {}} or {"specific": {"versions": [1]}}'
        ) from None
    if not policy.WhichOneof("policy_choice"):
        raise BadRequest("model_version_policy names no policy; send latest, all or specific")
    if policy.HasField("specific") and not policy.specific.versions:
        raise BadRequest("a specific model_version_policy needs at least one version")
    return entry


def served_versions(entry: model_server_config_pb2.ModelConfig, on_disk: list[int]) -> list[int]:
    """The versions ``entry``'s policy serves out of ``on_disk`` (sorted)."""
    policy = entry.model_version_policy
    if policy.HasField("specific"):
        return sorted(set(policy.specific.versions))
    if policy.HasField("all"):
        return on_disk
    return on_disk[-max(1, policy.latest.num_versions) :]


class Registry:
    def __init__(
        self,
        settings: Settings,
        client: ModelClient,
        catalog: Catalog,
        reconciler: Reconciler,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._client = client
        self._catalog = catalog
        self._reconciler = reconciler
        self._metrics = metrics
        self._roots = self._default_roots()

    def _default_roots(self) -> list[Path]:
        explicit = self._settings.allowed_roots()
        if explicit:
            return explicit
        folders = [store.path.parent for store in self._catalog.stores]
        for name in self._catalog.models():
            base = self._catalog.repository.base_path(name)
            if base is not None:
                folders.append(base.parent)
        return list(dict.fromkeys(folder.resolve() for folder in folders))

    def _store(self, config_file: str | None) -> DesiredStore:
        stores = self._catalog.stores
        if not stores:
            raise Conflict("adding models needs GATEWAY_MODEL_CONFIG_FILE (the servers' models.config)")
        if config_file is None:
            return stores[0]
        found = next((s for s in stores if s.path.name == config_file), None)
        if found is None:
            names = ", ".join(s.path.name for s in stores)
            raise BadRequest(
                f"config_file {config_file!r} is not one of the gateway's models.config files ({names})"
            )
        return found

    def _versions_under_roots(self, raw: str) -> list[int]:
        """The version folders of ``raw`` (checked as the module docstring says)."""
        roots = self._roots
        where = ", ".join(str(r) for r in roots)
        if not raw.strip() or "\x00" in raw:
            raise BadRequest("base_path is empty; send the model's folder (the one holding 1/, 2/, ...)")
        folder = ModelRepository({"m": raw}).base_path("m")
        if folder is None:
            raise BadRequest(
                f"base_path {raw!r} is not a folder the gateway can read; put the model under {where}"
            )
        resolved = folder.resolve()
        if resolved in roots:
            raise BadRequest(f"base_path {raw!r} is a model root itself; give the model's own folder in it")
        if not any(resolved.is_relative_to(root) for root in roots):
            raise BadRequest(f"base_path {raw!r} is outside the model roots; put the model under {where}")
        try:
            versions = sorted(
                int(p.name)
                for p in resolved.iterdir()
                if p.name.isdigit() and (p / "saved_model.pb").is_file()
            )
        except OSError as exc:
            raise BadRequest(f"base_path {raw!r} cannot be listed: {exc.strerror}") from None
        if not versions:
            raise BadRequest(
                f"base_path {raw!r} has no version: a model folder holds numeric version folders with a "
                "SavedModel each (e.g. 1/saved_model.pb)"
            )
        return versions

    async def add(
        self,
        name: str,
        base_path: str,
        policy_json: dict[str, Any] | None = None,
        config_file: str | None = None,
    ) -> Desired:
        if not NAME.fullmatch(name):
            raise BadRequest(
                f"model name {name!r} is not valid: start with a letter or digit, then letters, digits, "
                "'_', '.' or '-' (at most 64)"
            )
        store = self._store(config_file)
        if name in self._catalog.models():
            raise Conflict(
                f"model {name!r} exists already; remove it first, or publish a new version into it"
            )
        entry = model_entry(name, base_path, policy_json)
        on_disk = self._versions_under_roots(base_path)
        wanted = served_versions(entry, on_disk)
        missing = sorted(set(wanted) - set(on_disk))
        if missing:
            raise BadRequest(f"version(s) {missing} of the policy are not in {base_path!r} (found {on_disk})")
        async with store.transaction() as txn:  # the lock: read, check, write - then apply without it
            if name in txn.desired.models:
                raise Conflict(f"model {name!r} was just added by another gateway")
            old, new = txn.desired.copy(), txn.desired.copy()
            state = ModelState(base=text_format.MessageToString(entry))
            state.event("added", base_path=base_path, versions=wanted)
            new.models[name] = state
            written = txn.commit(new)
            self._catalog.add(name, base_path, store)  # no await since the commit: the file agrees
        with self._reconciler.applying(store):
            try:
                report = await self._reconciler.apply(store, written, {name: wanted})
            except GatewayError as exc:
                await self._restore(store, old, written.generation, name, exc)
                raise
        written.unconfirmed = {a: e for a, e in report.items() if e is not None}
        self._metrics.desired_generation.labels(store.path.name).set(written.generation)
        log.info("admin: model %s added from %s (versions %s)", name, base_path, wanted)
        return written

    async def _restore(
        self, store: DesiredStore, old: Desired, generation: int, name: str, error: GatewayError
    ) -> None:
        """Take a refused model out again, unless someone wrote the file since."""
        async with store.transaction() as txn:
            if txn.desired.generation != generation:
                log.warning("model %s: not removed after %s: the file changed since", name, error.message)
                return
            restored = txn.commit(old.copy())
            self._catalog.remove(name)
        log.error(
            "admin: adding model %s failed (%s); the previous models.config is back", name, error.message
        )
        try:
            await self._reconciler.apply(store, restored, {})
        except GatewayError as again:
            log.error("model %s: restoring the previous state failed too: %s", name, again.message)

    async def remove(self, name: str) -> tuple[Desired, dict[str, str | None]]:
        """Returns the new state and, per replica address, None (unloaded) or why not."""
        store = self._catalog.store_for(name)  # 404 for an unknown model
        addresses = await self._client.replicas(name)
        async with store.transaction() as txn:
            if name not in txn.desired.models:
                self._catalog.remove(name)
                raise NotFound(f"model {name!r} is no longer in {store.path.name}")
            new = txn.desired.copy()
            del new.models[name]
            written = txn.commit(new)
            self._catalog.retire(name)  # new requests: 404 at once; the replicas still get the config
        with self._reconciler.applying(store):
            try:
                await self._reconciler.apply(store, written, {})
            finally:
                self._catalog.remove(name)
        unloaded = await asyncio.gather(*(self._wait_unloaded(name, a) for a in addresses))
        self._metrics.desired_generation.labels(store.path.name).set(written.generation)
        log.info("admin: model %s removed", name)
        return written, dict(zip(addresses, unloaded, strict=True))

    async def _wait_unloaded(self, name: str, address: str) -> str | None:
        """None once ``address`` serves no version of ``name``; else why the wait ended."""
        deadline = time.monotonic() + LOAD_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                timeout = (
                    self._settings.replica_status_timeout_seconds
                )  # a hung replica never holds the reply
                reply = await self._client.status(name, address=address, timeout=timeout)
            except UpstreamError as exc:
                if exc.code is grpc.StatusCode.NOT_FOUND:
                    return None
                if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return "did not answer: it unloads the model from the file when it does"
                return exc.message
            if all(status.state == END for status in reply.model_version_status):
                return None
            await asyncio.sleep(0.1)
        return f"still serving after {LOAD_WAIT_SECONDS:.0f} s (in-flight requests)"
