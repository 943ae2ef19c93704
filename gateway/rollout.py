"""Version rollout: pin (promote), roll back, label, back to latest - through HandleReloadConfigRequest only.

TensorFlow Serving has no "list models" or "list versions on disk" call, and HandleReloadConfigRequest
REPLACES a
server's whole config. So the gateway holds, per model server, the full config the servers were started with
(``GATEWAY_MODEL_CONFIG_FILE``; models grouped by ``Settings.server_for``) and overlays its admin state:

- ``pinned``: serve exactly this version (``specific { versions }``), or None for the config's own policy.
- ``labels``: version labels; their versions are kept loaded too (TF Serving requires a label's version to be
  AVAILABLE), by adding them to ``specific`` or by widening ``latest { num_versions }`` enough to include
  them.
- ``history``: the versions that served before each change, newest last - rollback pops it.
- ``seen``: every version the gateway has seen AVAILABLE (from GetModelStatus, refreshed periodically).

"The previous version" for a rollback is the top of ``history``; with no history it is the highest version
below
the current one among ``seen`` and, when the model directory is readable from the gateway (same
``base_path``, e.g.
the models volume mounted), the numeric version directories on disk. A promote to a version that is known
not to
exist on disk is refused with 404 before touching the server; otherwise the gateway applies the config, waits
until the version is AVAILABLE (bounded), and restores the previous config if it fails to load.

State is written atomically (temp file in the same directory, fsync, ``os.replace``) after each change, and a
background task re-applies it when a server no longer matches it (e.g. after a model server restart, which
starts again from its own config file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import grpc
from google.protobuf import text_format

from gateway.client import ModelClient
from gateway.errors import BadRequest, Conflict, GatewayError, ModelNotFound, NotFound, UpstreamError
from gateway.repository import ModelRepository
from gateway.settings import Settings
from tfs_protos.tensorflow_serving.apis import get_model_status_pb2
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["ModelState", "Rollout", "ServedVersion", "load_model_config"]

log = logging.getLogger("gateway.rollout")
LABEL = re.compile(r"^[A-Za-z0-9_]{1,64}$")
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
LOAD_WAIT_SECONDS = 60.0
MAX_SEEN = 50


def load_model_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    """Parse TF Serving's ``models.config`` (text format ModelServerConfig)."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), config)
    except (OSError, text_format.ParseError) as exc:
        raise ValueError(f"cannot read model config {path}: {exc}") from exc
    return config


class ServedVersion(NamedTuple):
    """One version as a model server reports it (GetModelStatus)."""

    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error: str | None  # status.error_message when error_code is not OK (e.g. a version that failed to load)


@dataclass
class ModelState:
    pinned: int | None = None
    labels: dict[str, int] = field(default_factory=dict)
    history: list[int] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)

    def remember(self, versions: list[int]) -> None:
        self.seen = sorted(set(self.seen) | set(versions))[-MAX_SEEN:]


class Rollout:
    """Admin state per model and its application to the model servers (see module docstring)."""

    def __init__(self, settings: Settings, client: ModelClient) -> None:
        self._settings = settings
        self._client = client
        self._path = settings.state_file
        self._lock = asyncio.Lock()
        self._config = (
            load_model_config(settings.model_config_file) if settings.model_config_file is not None else None
        )
        self._base = {c.name: c for c in self._config.model_config_list.config} if self._config else {}
        self.repository = ModelRepository({name: c.base_path for name, c in self._base.items()})
        self.states: dict[str, ModelState] = self._read_state()

    # -- model names and servers -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._config is not None

    def models(self) -> list[str]:
        return list(self._base) if self._base else list(self._settings.models)

    def check_model(self, name: str) -> None:
        known = self.models()
        if known and name not in known:
            raise ModelNotFound(name, known=known)

    def state(self, name: str) -> ModelState:
        return self.states.setdefault(name, ModelState())

    # -- state file --------------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, ModelState]:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            return {name: ModelState(**value) for name, value in raw.get("models", {}).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"GATEWAY_STATE_FILE {self._path} is not valid gateway state: {exc}") from exc

    def _write_state(self) -> None:
        payload = json.dumps({"models": {k: asdict(v) for k, v in sorted(self.states.items())}}, indent=2)
        directory = self._path.resolve().parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self._path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- config rendering --------------------------------------------------------------------------------

    def _disk_versions(self, name: str) -> list[int] | None:
        return self.repository.versions(name)

    def render(
        self, address: str, pending: tuple[str, str] | None = None
    ) -> model_server_config_pb2.ModelServerConfig:
        """The full config for the server at ``address``: its models from the file + admin state.

        ``pending=(model, label)`` keeps that label's version loaded but leaves the label itself out.
        """
        config = model_server_config_pb2.ModelServerConfig()
        for name, base in self._base.items():
            if self._settings.server_for(name) != address:
                continue
            entry = config.model_config_list.config.add()
            entry.CopyFrom(base)
            state = self.states.get(name)
            if state is None or (state.pinned is None and not state.labels):
                continue
            keep = set(state.labels.values())
            if state.pinned is not None:
                entry.model_version_policy.Clear()
                entry.model_version_policy.specific.versions.extend(sorted(keep | {state.pinned}))
            elif keep:
                known = sorted(set(self._disk_versions(name) or []) | set(state.seen) | keep)
                needed = len([v for v in known if v >= min(keep)])
                current = base.model_version_policy
                if current.HasField("specific"):
                    versions = set(current.specific.versions) | keep
                    entry.model_version_policy.specific.ClearField("versions")
                    entry.model_version_policy.specific.versions.extend(sorted(versions))
                elif not current.HasField("all"):
                    have = current.latest.num_versions or 1
                    entry.model_version_policy.latest.num_versions = max(have, needed)
            entry.ClearField("version_labels")
            for label, version in sorted(state.labels.items()):
                if (name, label) != pending:
                    entry.version_labels[label] = version
        return config

    # -- observing the servers ---------------------------------------------------------------------------

    async def serving(self, name: str) -> list[ServedVersion]:
        """Every version the server reports for ``name``, lowest first."""
        try:
            reply = await self._client.status(name)
        except UpstreamError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:
                return []
            raise
        out = []
        for status in reply.model_version_status:
            state = get_model_status_pb2.ModelVersionStatus.State.Name(status.state)
            code = status.status.error_code
            error = (status.status.error_message or f"failed (error code {code})") if code != 0 else None
            out.append(ServedVersion(status.version, state, error))
        available = [v.version for v in out if v.state == "AVAILABLE"]
        if available:
            self.state(name).remember(available)
        return sorted(out, key=lambda v: v.version)

    async def _current(self, name: str) -> int | None:
        available = [v.version for v in await self.serving(name) if v.state == "AVAILABLE"]
        return max(available) if available else None

    async def _wait_available(self, name: str, version: int) -> None:
        deadline = time.monotonic() + LOAD_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                reply = await self._client.status(name, version=version)
            except UpstreamError as exc:
                if exc.code is not grpc.StatusCode.NOT_FOUND:
                    raise
            else:
                for status in reply.model_version_status:
                    if status.state == AVAILABLE:
                        return
                    if status.state == END and status.status.error_code != 0:
                        raise NotFound(
                            f"version {version} of model {name!r} failed to load: "
                            f"{status.status.error_message}"
                        )
            await asyncio.sleep(0.25)
        raise Conflict(
            f"version {version} of model {name!r} did not become AVAILABLE in {LOAD_WAIT_SECONDS:.0f} s"
        )

    async def _apply(self, name: str, wait_for: list[int], previous: ModelState) -> None:
        """Send the rendered config to the model's server; on failure restore ``previous``."""
        address = self._settings.server_for(name)
        try:
            await self._client.reload_config(address, self.render(address))
            for version in wait_for:
                await self._wait_available(name, version)
        except GatewayError:
            self.states[name] = previous
            with contextlib.suppress(GatewayError):
                await self._client.reload_config(address, self.render(address))
            raise
        self._write_state()

    # -- admin operations (each holds the lock: one change at a time) --------------------------------------

    def _require(self, name: str) -> ModelState:
        if not self.enabled:
            raise Conflict("version admin needs GATEWAY_MODEL_CONFIG_FILE (the servers' models.config)")
        self.check_model(name)
        return self.state(name)

    def _snapshot(self, state: ModelState) -> ModelState:
        return ModelState(state.pinned, dict(state.labels), list(state.history), list(state.seen))

    async def promote(self, name: str, version: int) -> None:
        async with self._lock:
            state = self._require(name)
            disk = self._disk_versions(name)
            if disk is not None and version not in disk:
                raise ModelNotFound(name, version)
            previous = self._snapshot(state)
            current = state.pinned if state.pinned is not None else await self._current(name)
            if current is not None and current != version:
                state.history = (state.history + [current])[-MAX_SEEN:]
            state.pinned = version
            await self._apply(name, [version], previous)
            log.info("admin: model %s pinned to version %d (was %s)", name, version, current)

    async def rollback(self, name: str) -> int:
        async with self._lock:
            state = self._require(name)
            previous = self._snapshot(state)
            current = state.pinned if state.pinned is not None else await self._current(name)
            target = None
            while state.history and target is None:
                candidate = state.history.pop()
                target = candidate if candidate != current else None
            if target is None:
                known = set(state.seen) | set(self._disk_versions(name) or [])
                older = [v for v in known if current is not None and v < current]
                if not older:
                    raise Conflict(f"model {name!r} has no version before {current} to roll back to")
                target = max(older)
            state.pinned = target
            await self._apply(name, [target], previous)
            log.info("admin: model %s rolled back from version %s to %d", name, current, target)
            return target

    async def latest(self, name: str) -> None:
        async with self._lock:
            state = self._require(name)
            previous = self._snapshot(state)
            if state.pinned is not None:
                state.history = (state.history + [state.pinned])[-MAX_SEEN:]
            state.pinned = None
            await self._apply(name, [], previous)
            log.info("admin: model %s back to its configured policy (latest)", name)

    async def set_label(self, name: str, label: str, version: int | None) -> None:
        if not LABEL.match(label):
            raise BadRequest(f"label {label!r} must match [A-Za-z0-9_]+ (at most 64 characters)")
        async with self._lock:
            state = self._require(name)
            previous = self._snapshot(state)
            if version is None:
                if label not in state.labels:
                    raise NotFound(f"model {name!r} has no label {label!r}")
                del state.labels[label]
                await self._apply(name, [], previous)
                log.info("admin: model %s label %s removed", name, label)
                return
            disk = self._disk_versions(name)
            if disk is not None and version not in disk:
                raise ModelNotFound(name, version)
            state.labels[label] = version
            # TF Serving refuses a label on a version that is not AVAILABLE: load it first, then assign.
            address = self._settings.server_for(name)
            try:
                await self._client.reload_config(address, self.render(address, pending=(name, label)))
                await self._wait_available(name, version)
            except GatewayError:
                self.states[name] = previous
                with contextlib.suppress(GatewayError):
                    await self._client.reload_config(address, self.render(address))
                raise
            await self._apply(name, [], previous)
            log.info("admin: model %s label %s -> version %d", name, label, version)

    # -- keeping servers in line -------------------------------------------------------------------------

    async def reconcile_once(self) -> None:
        """Re-apply state to each server whose models no longer match it (e.g. after a restart)."""
        for address in sorted({self._settings.server_for(n) for n in self._base}):
            names = [n for n in self._base if self._settings.server_for(n) == address]
            managed = [
                n for n in names if n in self.states and (self.states[n].pinned or self.states[n].labels)
            ]
            drift = False
            for name in managed:
                state = self.states[name]
                try:
                    available = {v.version for v in await self.serving(name) if v.state == "AVAILABLE"}
                except UpstreamError:
                    drift = False
                    break
                wanted = set(state.labels.values()) | ({state.pinned} if state.pinned is not None else set())
                if state.pinned is not None and (available - wanted or state.pinned not in available):
                    drift = True
                if state.labels and not wanted <= available:
                    drift = True
                for label in state.labels:
                    try:
                        await self._client.metadata(name, label=label)
                    except UpstreamError:
                        drift = True
            if drift:
                log.warning("model server %s does not match the admin state; re-applying it", address)
                with contextlib.suppress(GatewayError):
                    await self._client.reload_config(address, self.render(address))

    async def run(self) -> None:
        """Background loop: reconcile every ``GATEWAY_STATE_REFRESH_SECONDS`` until cancelled."""
        while True:
            await asyncio.sleep(self._settings.state_refresh_seconds)
            async with self._lock:
                try:
                    await self.reconcile_once()
                except Exception:  # never let the loop die
                    log.exception("reconcile failed")
