"""AspiredVersionsManager: receives each model's aspired versions from the source, loads and unloads them,
and hands out servable handles to requests (TF Serving's ``core/aspired_versions_manager.h``).

Contract:
- ``reconcile(name, aspired)`` is called by the source after every poll (and by config reloads). Calls for
  one model are serialised; different models do not wait for each other's handles to drain.
- Each version lives in a ``LoaderHarness`` (``modelserver.lifecycle.harness``: the state table). The order of loads
  and unloads is the pluggable ``AspiredVersionPolicy`` (``modelserver.lifecycle.aspired_version_policy``): availability
  preserving (default; TF Serving's only policy in ``server.cc``) loads and warms new versions *before*
  unloading old ones; resource preserving unloads first. A version that fails to load ends in ERROR (END
  in status, with its error) and never replaces one that serves; it is retried only when its directory
  changes (or, for RESOURCE_EXHAUSTED, on the next reconcile, when space may have been freed).
- RAM budget: a version whose estimate does not fit next to the versions holding RAM fails with
  RESOURCE_EXHAUSTED.
- ``acquire(...)`` resolves a request's (name, version | label | latest) to a ref-counted handle; a version
  is unloaded only after its last handle is released.
- The manager sees loaders only through the ``VersionLoader`` protocol, made by the injected
  ``LoaderFactory`` (the TensorFlow loader is wired in by ``modelserver.process.server``). All methods run on the
  event loop; the loaders' blocking calls run in worker threads:
- Threads (TF Serving's ``num_load_threads`` / ``num_unload_threads``, whose 0 means "serially in the
  manager's main work loop"): the manager owns one dedicated *manager thread*. ``num_load_threads=0`` runs
  every load (the RAM estimate too) there, one at a time; N > 0 gives loads a pool of N threads of their
  own. Likewise ``num_unload_threads``: 0 runs unloads in the manager thread, N > 0 in a pool of N. So 0/0
  (the default) is one thread for everything, strictly serial; N/0 keeps unloads serial beside the loads.
  ``load_threads`` > 1 is the number of loads that may run at once, for *different* models: callers that
  reconcile several models (the source's poll, config reloads) then do so concurrently. One model's
  reconciles stay serialised by its lock, so its order (the aspired-version policy's) never changes.
- RAM with concurrent loads: a load's estimate is checked against the free budget and reserved in one step
  on the event loop (``LoaderHarness.load``); a load still LOADING counts, so two loads that each fit alone
  but not together never both start: one ends in RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from modelserver.errors import (
    FailedPrecondition,
    NotFound,
    ServableNotFound,
    Unavailable,
    UnknownVersionLabel,
)
from modelserver.lifecycle.aspired_version_policy import (
    Action,
    AspiredVersionPolicy,
    AvailabilityPreserving,
    VersionView,
)
from modelserver.lifecycle.handle import ServableHandle, SharedServable
from modelserver.lifecycle.harness import HarnessState, LoaderFactory, LoaderHarness, fingerprint
from modelserver.lifecycle.unabandoned import run_to_end
from modelserver.metrics import METRICS, Metrics

__all__ = ["AspiredVersionsManager"]

log = logging.getLogger("modelserver.manager")

T = TypeVar("T")


@dataclass
class _Model:
    name: str
    versions: dict[int, LoaderHarness] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    unloads: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    latest: SharedServable | None = None  # cached: the highest AVAILABLE version

    def refresh_latest(self) -> None:
        available = [r for r in self.versions.values() if r.harness_state is HarnessState.READY and r.shared]
        self.latest = max(available, key=lambda r: r.version).shared if available else None


class AspiredVersionsManager:
    def __init__(
        self,
        loader_factory: LoaderFactory,
        *,
        ram_budget_bytes: int,
        policy: AspiredVersionPolicy | None = None,
        metrics: Metrics = METRICS,
        num_load_threads: int = 0,
        num_unload_threads: int = 0,
    ) -> None:
        if num_load_threads < 0 or num_unload_threads < 0:
            raise ValueError(f"thread counts must be >= 0: {num_load_threads=}, {num_unload_threads=}")
        self._loader_factory = loader_factory
        self._ram_budget = ram_budget_bytes
        self._policy: AspiredVersionPolicy = policy or AvailabilityPreserving()
        self._metrics = metrics
        self._models: dict[str, _Model] = {}
        manager_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="manager")
        self._load_pool = (
            ThreadPoolExecutor(num_load_threads, thread_name_prefix="load")
            if num_load_threads
            else manager_thread
        )
        self._unload_pool = (
            ThreadPoolExecutor(num_unload_threads, thread_name_prefix="unload")
            if num_unload_threads
            else manager_thread
        )
        self.load_threads = max(1, num_load_threads)
        self._unloads: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------------------
    def _model(self, name: str) -> _Model:
        return self._models.setdefault(name, _Model(name))

    async def _run_load(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._load_pool, call)

    async def _run_unload(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._unload_pool, call)

    def _ram_in_use(self) -> int:
        return sum(r.ram_bytes for m in self._models.values() for r in m.versions.values() if r.holds_ram)

    @staticmethod
    def _wants_load(harness: LoaderHarness | None, path: Path) -> bool:
        if harness is None or harness.harness_state is HarnessState.DISABLED:  # new, or aspired again
            return True
        if harness.harness_state is not HarnessState.ERROR:
            return False
        if harness.error is not None and harness.error.code.name == "RESOURCE_EXHAUSTED":
            return True
        return fingerprint(path) != harness.fingerprint  # failed: retry only a changed directory

    def _views(self, model: _Model, aspired: Mapping[int, Path], tried: set[int]) -> list[VersionView]:
        views = []
        for version in sorted(set(aspired) | set(model.versions)):
            harness = model.versions.get(version)
            wants = (
                version in aspired and version not in tried and self._wants_load(harness, aspired[version])
            )
            views.append(
                VersionView(version, version in aspired, harness.harness_state if harness else None, wants)
            )
        return views

    async def reconcile(self, name: str, aspired: Mapping[int, Path]) -> None:
        """Load and unload ``name``'s versions towards ``aspired``; runs to its end even if the caller is
        cancelled (``run_to_end``: a version is never left LOADING)."""
        await run_to_end(self._reconcile(name, aspired), f"reconcile {name}")

    async def _reconcile(self, name: str, aspired: Mapping[int, Path]) -> None:
        model = self._model(name)
        async with model.lock:
            tried: set[int] = set()  # each version is tried at most once per reconcile
            while True:
                views = self._views(model, aspired, tried)
                action = self._policy.next_action(views)
                if action is None:
                    in_flight = list(model.unloads.values())
                    if in_flight and any(v.wants_load for v in views):  # the policy waits for these
                        await asyncio.gather(*in_flight, return_exceptions=True)
                        continue
                    break
                kind, version = action
                if kind is Action.LOAD:
                    tried.add(version)
                    await self._load(model, version, aspired[version])
                else:
                    self._start_unload(model, model.versions[version])
            # a label pointing at an unloaded version keeps pointing at it (TF Serving does the same)

    async def _load(self, model: _Model, version: int, path: Path) -> None:
        harness = LoaderHarness(model.name, version, path, self._loader_factory(model.name, version, path))
        model.versions[version] = harness
        log.info("model %s: version %d seen at %s", model.name, version, path)
        free = lambda: self._ram_budget - self._ram_in_use()  # noqa: E731 - read when the estimate is known
        if not await harness.load(self._run_load, free, self._ram_budget):
            self._metrics.loads.labels(model.name, "error").inc()
            return
        model.refresh_latest()
        self._metrics.loads.labels(model.name, "ok").inc()
        self._metrics.load_seconds.labels(model.name).observe(harness.load_seconds)
        self._update_available(model)

    def _start_unload(self, model: _Model, harness: LoaderHarness) -> None:
        harness.quiesce()
        model.refresh_latest()
        self._update_available(model)
        task = asyncio.create_task(self._unload(model, harness))
        self._unloads.add(task)
        model.unloads[harness.version] = task
        task.add_done_callback(self._unloads.discard)
        task.add_done_callback(lambda _: model.unloads.pop(harness.version, None))

    async def _unload(self, model: _Model, harness: LoaderHarness) -> None:
        await harness.unload(self._run_unload)
        self._metrics.unloads.labels(model.name).inc()
        self._metrics.unload_seconds.labels(model.name).observe(harness.unload_seconds)

    def _update_available(self, model: _Model) -> None:
        count = sum(1 for r in model.versions.values() if r.harness_state is HarnessState.READY)
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
            for harness in model.versions.values():
                if harness.harness_state is HarnessState.READY:
                    self._start_unload(model, harness)
        await self.wait_unloads()
        for pool in {self._load_pool, self._unload_pool}:
            pool.shutdown(wait=False, cancel_futures=True)

    # ---- labels ----------------------------------------------------------------------------------------
    def set_labels(self, name: str, labels: Mapping[str, int], *, allow_unavailable: bool) -> None:
        """Replace a model's labels; each must name an AVAILABLE version (TF Serving's rule), except a *new*
        label with ``allow_unavailable`` (``--allow_version_labels_for_unavailable_models``)."""
        model = self._model(name)
        for label, version in labels.items():
            harness = model.versions.get(version)
            if harness is not None and harness.harness_state is HarnessState.READY:
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
            shared = model.latest
            if shared is None:
                raise Unavailable(self._nothing_available(model))
            return shared.acquire()
        harness = model.versions.get(version)
        if harness is None or harness.harness_state is not HarnessState.READY or harness.shared is None:
            raise ServableNotFound(name, version)
        return harness.shared.acquire()

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

    def status(self, name: str, version: int | None = None) -> list[LoaderHarness]:
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
        return sorted(v for v, r in model.versions.items() if r.harness_state is HarnessState.READY)

    def model_names(self) -> list[str]:
        return sorted(self._models)
