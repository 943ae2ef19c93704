"""Shared fakes for lifecycle tests (manager, harness, policies, server core): no TensorFlow, no files.

    loaders = FakeLoaders({2: Script(error=DataLoss(...)), 3: Script(ram_bytes=600)})
    gate = loaders.gate(4)                      # version 4's load blocks until gate.set()
    manager = AspiredVersionsManager(loaders, ram_budget_bytes=1000, metrics=Metrics())
    await manager.reconcile("m", versions(1, 2))
    loaders.events                               # [("load", "m", 1), ("loaded", "m", 1), ...] in order
    loaders.threads[("loaded", "m", 1)]          # the thread that ran it (loads and unloads run in threads)

``FakeSource`` stands in for ``FileSystemSource``: the test sets each model's aspired versions and
``poll_once`` hands them to the callback, as a poll would.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from modelserver.errors import ServingError

if TYPE_CHECKING:
    from modelserver.lifecycle.source import ModelSource
    from modelserver.runtime.servable import Servable

__all__ = ["FakeLoader", "FakeLoaders", "FakeServable", "FakeSource", "Script", "versions"]


def versions(*numbers: int, name: str = "m") -> dict[int, Path]:
    """Aspired versions as the source reports them: {version: path}."""
    return {v: Path(f"/models/{name}/{v}") for v in numbers}


@dataclass
class Script:
    """How one version's loader behaves: its RAM estimate (which may first wait at a barrier with other
    estimates), and a load that fails or waits for a gate."""

    ram_bytes: int = 10
    error: ServingError | None = None
    gate: threading.Event | None = None
    estimate_barrier: threading.Barrier | None = None


@dataclass
class FakeServable:
    """What the manager and handles read of a servable (name, version, the post-load RAM re-estimate), and
    nothing else."""

    name: str
    version: int
    path: Path
    ram_bytes: int = 0


class FakeLoader:
    def __init__(self, owner: FakeLoaders, name: str, version: int, path: Path) -> None:
        self.owner, self.name, self.version, self.path = owner, name, version, path
        self.script = owner.scripts.get(version, Script())
        self.unloaded = False

    def estimate_ram_bytes(self) -> int:
        if self.script.estimate_barrier is not None:
            self.script.estimate_barrier.wait(60)  # hang guard only: BrokenBarrierError after it
        return self.script.ram_bytes

    def load(self) -> Servable:
        self.owner.record("load", self.name, self.version)
        if self.script.gate is not None and not self.script.gate.wait(60):  # hang guard only
            raise TimeoutError(f"the test never opened version {self.version}'s gate")
        if self.script.error is not None:
            raise self.script.error
        self.owner.record("loaded", self.name, self.version)
        return cast("Servable", FakeServable(self.name, self.version, self.path))

    def unload(self, servable: Servable) -> None:
        assert servable.version == self.version
        self.unloaded = True
        self.owner.record("unload", self.name, self.version)


@dataclass
class FakeLoaders:
    """The manager's ``LoaderFactory``: one ``FakeLoader`` per (name, version) it is asked for."""

    scripts: dict[int, Script] = field(default_factory=dict)
    events: list[tuple[str, str, int]] = field(default_factory=list)
    threads: dict[tuple[str, str, int], int] = field(default_factory=dict)
    made: list[FakeLoader] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, name: str, version: int, path: Path) -> FakeLoader:
        loader = FakeLoader(self, name, version, path)
        self.made.append(loader)
        return loader

    def record(self, event: str, name: str, version: int) -> None:
        with self._lock:  # loads and unloads run in the manager's worker threads
            self.events.append((event, name, version))
            self.threads[(event, name, version)] = threading.get_ident()

    def gate(self, version: int) -> threading.Event:
        """Make ``version``'s load block until the returned event is set."""
        gate = threading.Event()
        self.scripts.setdefault(version, Script()).gate = gate
        return gate

    def started(self, version: int, name: str = "m") -> bool:
        return ("load", name, version) in self.events


class FakeSource:
    """A scripted source: ``aspire(name, versions)`` sets what the next ``poll_once`` reports."""

    def __init__(self, callback: Callable[[str, Mapping[int, Path]], Awaitable[None]]) -> None:
        self._callback = callback
        self.models: dict[str, ModelSource] = {}
        self.aspired: dict[str, dict[int, Path]] = {}
        self.polls = 0

    def aspire(self, name: str, numbers: Mapping[int, Path]) -> None:
        self.aspired[name] = dict(numbers)

    def set_models(self, models: Mapping[str, ModelSource]) -> None:
        self.models = dict(models)

    async def poll_once(self) -> None:
        self.polls += 1
        for name in list(self.models):
            await self._callback(name, self.aspired.get(name, {}))

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
