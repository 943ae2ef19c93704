"""AspiredVersionsManager: receives each model's aspired versions from the source, loads and unloads them,
and hands out servable handles to requests.

Contract:
- ``reconcile(name, aspired)`` is called by the source after every poll (and by config reloads). Calls for
  one model are serialised; different models do not wait for each other's handles to drain.
- Availability preserving (TF Serving's only policy in ``server.cc``): new aspired versions are
  loaded (highest first) and warmed *before* versions no longer aspired are unloaded, and an un-aspired
  version is only unloaded once some aspired version is AVAILABLE - or when the model has no aspired
  versions at all (removed from the config). A version that fails to load ends in END with its error
  (reported by status) and never replaces one that serves; it is retried only when its directory changes.
- RAM budget: a version whose estimate does not fit next to the loaded ones fails with RESOURCE_EXHAUSTED
  (retried on later polls, when space may have been freed).
- ``acquire(...)`` resolves a request's (name, version | label | latest) to a ref-counted handle; a version
  is unloaded only after its last handle is released.
- All methods run on the event loop; loads and unloads run in a dedicated worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelserver.errors import (
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    ServableNotFound,
    ServingError,
    Unavailable,
    UnknownVersionLabel,
)
from modelserver.handle import ServableEntry, ServableHandle
from modelserver.loader import Loader
from modelserver.metrics import METRICS, Metrics
from modelserver.servable import Servable, serving_error_from_tf
from modelserver.state import ManagerState

__all__ = ["AspiredVersionsManager", "VersionRecord"]

log = logging.getLogger("modelserver.manager")


class VersionLoader(Protocol):
    """What the manager needs from a loader (``modelserver.loader.Loader``; tests use fakes)."""

    def estimate_ram_bytes(self) -> int: ...
    def load(self) -> Servable: ...
    def unload(self, servable: Servable) -> None: ...


LoaderFactory = Callable[[str, int, Path], VersionLoader]


def _fingerprint(path: Path) -> tuple[int, int]:
    try:
        stat = (path / "saved_model.pb").stat()
        return stat.st_mtime_ns, stat.st_size
    except OSError:
        return 0, 0


@dataclass
class VersionRecord:
    """What status reports about one version (kept after unload, as TF Serving's state monitor does)."""

    version: int
    path: Path
    state: ManagerState = ManagerState.START
    error: ServingError | None = None
    entry: ServableEntry | None = None
    ram_bytes: int = 0
    fingerprint: tuple[int, int] = (0, 0)
    loader: VersionLoader | None = None


@dataclass
class _Model:
    name: str
    versions: dict[int, VersionRecord] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    latest: ServableEntry | None = None  # cached: the highest AVAILABLE version

    def refresh_latest(self) -> None:
        available = [r for r in self.versions.values() if r.state == ManagerState.AVAILABLE and r.entry]
        self.latest = max(available, key=lambda r: r.version).entry if available else None


class AspiredVersionsManager:
    def __init__(
        self,
        loader_factory: LoaderFactory,
        *,
        ram_budget_bytes: int,
        metrics: Metrics = METRICS,
    ) -> None:
        self._loader_factory = loader_factory
        self._ram_budget = ram_budget_bytes
        self._metrics = metrics
        self._models: dict[str, _Model] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
        self._unloads: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------------------
    def _model(self, name: str) -> _Model:
        return self._models.setdefault(name, _Model(name))

    def _ram_in_use(self) -> int:
        return sum(
            r.ram_bytes
            for m in self._models.values()
            for r in m.versions.values()
            if r.state in (ManagerState.LOADING, ManagerState.AVAILABLE, ManagerState.UNLOADING)
        )

    def _wants_load(self, record: VersionRecord | None, path: Path) -> bool:
        if record is None:
            return True
        if record.state != ManagerState.END:
            return False
        if record.error is None:  # unloaded earlier, aspired again
            return True
        if record.error.code.name == "RESOURCE_EXHAUSTED":
            return True
        return _fingerprint(path) != record.fingerprint  # failed: retry only a changed directory

    async def reconcile(self, name: str, aspired: Mapping[int, Path]) -> None:
        model = self._model(name)
        async with model.lock:
            for version in sorted(aspired, reverse=True):
                if self._wants_load(model.versions.get(version), aspired[version]):
                    await self._load(model, version, aspired[version])
            serving_aspired = any(
                model.versions[v].state == ManagerState.AVAILABLE for v in aspired if v in model.versions
            )
            if serving_aspired or not aspired:
                for version, record in sorted(model.versions.items()):
                    if version not in aspired and record.state == ManagerState.AVAILABLE:
                        self._start_unload(model, record)
            # a label pointing at an unloaded version keeps pointing at it (TF Serving does the same)

    async def _load(self, model: _Model, version: int, path: Path) -> None:
        loader = self._loader_factory(model.name, version, path)
        record = VersionRecord(
            version, path, ManagerState.START, fingerprint=_fingerprint(path), loader=loader
        )
        model.versions[version] = record
        log.info("model %s: version %d seen at %s", model.name, version, path)
        started = time.perf_counter()
        try:
            estimate = await asyncio.get_running_loop().run_in_executor(self._pool, loader.estimate_ram_bytes)
            free = self._ram_budget - self._ram_in_use()
            log.info(
                "model %s version %d: estimated RAM %.1f MiB (%.1f MiB of the budget free)",
                model.name,
                version,
                estimate / 2**20,
                free / 2**20,
            )
            if estimate > free:
                raise ResourceExhausted(
                    f"Insufficient resources to load model {model.name} version {version}: it needs about "
                    f"{estimate / 2**20:.1f} MiB of RAM but only {max(free, 0) / 2**20:.1f} MiB of the "
                    f"{self._ram_budget / 2**20:.1f} MiB budget is free"
                )
            record.ram_bytes = estimate
            record.state = ManagerState.LOADING
            servable: Servable = await asyncio.get_running_loop().run_in_executor(self._pool, loader.load)
        except Exception as exc:
            error = serving_error_from_tf(exc)
            record.state, record.error, record.ram_bytes = ManagerState.END, error, 0
            self._metrics.loads.labels(model.name, "error").inc()
            log.error("model %s version %d: load failed: %s", model.name, version, error.message)
            return
        record.entry = ServableEntry(servable)
        record.state = ManagerState.AVAILABLE
        model.refresh_latest()
        seconds = time.perf_counter() - started
        self._metrics.loads.labels(model.name, "ok").inc()
        self._metrics.load_seconds.labels(model.name).observe(seconds)
        self._update_available(model)
        log.info("model %s version %d: AVAILABLE after %d ms", model.name, version, seconds * 1000)

    def _start_unload(self, model: _Model, record: VersionRecord) -> None:
        record.state = ManagerState.UNLOADING
        model.refresh_latest()
        self._update_available(model)
        task = asyncio.create_task(self._unload(model, record))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def _unload(self, model: _Model, record: VersionRecord) -> None:
        entry = record.entry
        assert entry is not None
        entry.retire()
        if entry.refs:
            log.info(
                "model %s version %d: waiting for %d requests to finish",
                model.name,
                record.version,
                entry.refs,
            )
        await entry.wait_released()
        started = time.perf_counter()
        unload = record.loader.unload if record.loader is not None else Loader.unload
        await asyncio.get_running_loop().run_in_executor(self._pool, unload, entry.servable)
        record.entry, record.state, record.ram_bytes = None, ManagerState.END, 0
        self._metrics.unloads.labels(model.name).inc()
        self._metrics.unload_seconds.labels(model.name).observe(time.perf_counter() - started)
        log.info("model %s version %d: unloaded", model.name, record.version)

    def _update_available(self, model: _Model) -> None:
        count = sum(1 for r in model.versions.values() if r.state == ManagerState.AVAILABLE)
        self._metrics.available_versions.labels(model.name).set(count)

    async def remove_model(self, name: str) -> None:
        """Unload every version of a model no longer configured (its status history stays)."""
        await self.reconcile(name, {})
        if name in self._models:
            self._models[name].labels.clear()

    async def wait_unloads(self) -> None:
        if self._unloads:
            await asyncio.gather(*list(self._unloads), return_exceptions=True)

    async def shutdown(self) -> None:
        for model in self._models.values():
            for record in model.versions.values():
                if record.state == ManagerState.AVAILABLE:
                    self._start_unload(model, record)
        await self.wait_unloads()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- labels ----------------------------------------------------------------------------------------
    def set_labels(self, name: str, labels: Mapping[str, int], *, allow_unavailable: bool) -> None:
        """Replace a model's labels; each must name an AVAILABLE version (TF Serving's rule), except a *new*
        label with ``allow_unavailable`` (``--allow_version_labels_for_unavailable_models``)."""
        model = self._model(name)
        for label, version in labels.items():
            record = model.versions.get(version)
            if record is not None and record.state == ManagerState.AVAILABLE:
                continue
            if allow_unavailable and model.labels.get(label, version) == version:
                continue
            raise FailedPrecondition(
                f"Request to assign label to version {version} of model {name}, which is not currently "
                f"available for inference"
            )
        model.labels = dict(labels)

    def labels(self, name: str) -> dict[str, int]:
        model = self._models.get(name)
        return dict(model.labels) if model else {}

    # ---- requests --------------------------------------------------------------------------------------
    def resolve_version(self, name: str, version: int | None, label: str | None) -> int | None:
        """The version a (version | label | latest) request names; None for latest."""
        if label:
            model = self._models.get(name)
            if model is None or label not in model.labels:
                raise UnknownVersionLabel(label)
            return model.labels[label]
        return version

    def acquire(self, name: str, version: int | None = None, label: str | None = None) -> ServableHandle:
        """A handle on the requested version (latest AVAILABLE when neither version nor label is given)."""
        model = self._models.get(name)
        version = self.resolve_version(name, version, label)
        if model is None or not model.versions:
            raise ServableNotFound(name, version)
        if version is None:
            entry = model.latest
            if entry is None:
                raise Unavailable(self._nothing_available(model))
            return entry.acquire()
        record = model.versions.get(version)
        if record is None or record.state != ManagerState.AVAILABLE or record.entry is None:
            raise ServableNotFound(name, version)
        return record.entry.acquire()

    @staticmethod
    def _nothing_available(model: _Model) -> str:
        parts = []
        for v, r in sorted(model.versions.items(), reverse=True):
            parts.append(f"version {v} {r.state.name}" + (f": {r.error.message}" if r.error else ""))
        return (
            f"Servable not found for request: Latest({model.name}): no version of model {model.name} "
            f"is available ({'; '.join(parts)})"
        )

    def is_known(self, name: str) -> bool:
        return name in self._models

    def status(self, name: str, version: int | None = None) -> list[VersionRecord]:
        """Version records, highest first; NotFound with TF Serving's messages."""
        model = self._models.get(name)
        if model is None or not model.versions:
            raise NotFound(f"Could not find any versions of model {name}")
        if version is None:
            return [model.versions[v] for v in sorted(model.versions, reverse=True)]
        if version not in model.versions:
            raise NotFound(f"Could not find version {version} of model {name}")
        return [model.versions[version]]

    def available_versions(self, name: str) -> list[int]:
        model = self._models.get(name)
        if model is None:
            return []
        return sorted(v for v, r in model.versions.items() if r.state == ManagerState.AVAILABLE)

    def model_names(self) -> list[str]:
        return sorted(self._models)
