"""LoaderHarness: one model version's lifecycle, as TF Serving's ``core/loader_harness.h``.

The legal transitions are the table ``TRANSITIONS``; ``LoaderHarness._enter`` is the only place a version
changes state, and it refuses anything else (``IllegalTransition``, a bug in the caller)::

    NEW ──> LOADING ──> READY ──> QUIESCING ──> QUIESCED ──> UNLOADING ──> DISABLED
     │         │
     └─────────┴──> ERROR            (refused by the RAM budget, or the load failed)

- NEW: seen by the source, nothing done yet.          - READY: serving; requests acquire handles.
- QUIESCING: retired, no new handle; waits for the held ones to be released.
- QUIESCED: no handle left.  UNLOADING: ``Loader.unload`` runs.  DISABLED / ERROR: terminal.
A version aspired again after DISABLED or retried after ERROR gets a new harness.

Status reports TF Serving's ``ServableState`` view (``REPORTED``): NEW=START, LOADING, READY=AVAILABLE,
QUIESCING/QUIESCED/UNLOADING=UNLOADING, DISABLED/ERROR=END (ERROR with its error).

Contract: the manager (the only caller) calls ``load`` and ``unload`` on the event loop, one at a time per
harness; their blocking parts (``Loader`` calls) run through ``run_blocking`` in the manager's load or unload
threads. Several harnesses may load at once: each checks its estimate against the free budget and reserves
it in one synchronous step (``_reserve``), and LOADING holds RAM, so concurrent loads never overbook.
The harness never imports TensorFlow: it sees the loader through the ``VersionLoader`` protocol.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import grpc

from modelserver.errors import ResourceExhausted, ServingError
from modelserver.lifecycle.handle import SharedServable
from modelserver.lifecycle.state import ManagerState

if TYPE_CHECKING:
    from modelserver.runtime.servable import Servable

__all__ = [
    "REPORTED",
    "TRANSITIONS",
    "HarnessState",
    "IllegalTransition",
    "LoaderFactory",
    "LoaderHarness",
    "RunBlocking",
    "VersionLoader",
]

log = logging.getLogger("modelserver.harness")

T = TypeVar("T")


class VersionLoader(Protocol):
    """What the manager needs from a loader: one per version, made by a ``LoaderFactory``.

    - ``estimate_ram_bytes()`` is cheap (no model load); called first so a version that does not fit the
      RAM budget is refused before anything is loaded.
    - ``load()`` blocks and returns a ready ``Servable`` or raises (a ``ServingError`` says why; anything
      else is reported as INTERNAL); it never leaves a half-loaded servable behind. Its ``ram_bytes`` may
      re-estimate after the load (the warm-up's measured cost): a larger figure replaces the reservation.
    - ``unload(servable)`` drops the version's resources; called once, after the last handle is released.
    The TensorFlow implementation is ``modelserver.runtime.loader.Loader``, injected by whoever wires the server.
    """

    def estimate_ram_bytes(self) -> int: ...
    def load(self) -> Servable: ...
    def unload(self, servable: Servable) -> None: ...


LoaderFactory = Callable[[str, int, Path], VersionLoader]


class RunBlocking(Protocol):
    """Runs a blocking call off the event loop (in the manager's load or unload threads)."""

    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


class HarnessState(enum.Enum):
    NEW = "new"
    LOADING = "loading"
    READY = "ready"
    ERROR = "error"
    QUIESCING = "quiescing"
    QUIESCED = "quiesced"
    UNLOADING = "unloading"
    DISABLED = "disabled"


S = HarnessState
TRANSITIONS: Mapping[HarnessState, frozenset[HarnessState]] = {
    S.NEW: frozenset({S.LOADING, S.ERROR}),
    S.LOADING: frozenset({S.READY, S.ERROR}),
    S.READY: frozenset({S.QUIESCING}),
    S.QUIESCING: frozenset({S.QUIESCED}),
    S.QUIESCED: frozenset({S.UNLOADING}),
    S.UNLOADING: frozenset({S.DISABLED}),
    S.ERROR: frozenset(),
    S.DISABLED: frozenset(),
}
REPORTED: Mapping[HarnessState, ManagerState] = {
    S.NEW: ManagerState.START,
    S.LOADING: ManagerState.LOADING,
    S.READY: ManagerState.AVAILABLE,
    S.QUIESCING: ManagerState.UNLOADING,
    S.QUIESCED: ManagerState.UNLOADING,
    S.UNLOADING: ManagerState.UNLOADING,
    S.ERROR: ManagerState.END,
    S.DISABLED: ManagerState.END,
}
# States whose RAM counts against the budget (reserved from LOADING until the unload finished).
HOLDS_RAM = frozenset({S.LOADING, S.READY, S.QUIESCING, S.QUIESCED, S.UNLOADING})
UNLOADING_STATES = frozenset({S.QUIESCING, S.QUIESCED, S.UNLOADING})


class IllegalTransition(RuntimeError):
    """A state change the table does not allow: a bug in the caller, never a user error."""


def fingerprint(path: Path) -> tuple[int, int]:
    """(mtime, size) of the version's saved_model.pb (or model.tflite): a failed version is retried only once
    it changes."""
    for name in ("saved_model.pb", "model.tflite"):
        try:
            stat = (path / name).stat()
            return stat.st_mtime_ns, stat.st_size
        except OSError:
            continue
    return 0, 0


def as_serving_error(exc: BaseException) -> ServingError:
    if isinstance(exc, ServingError):
        return exc
    return ServingError(f"{type(exc).__name__}: {exc}", code=grpc.StatusCode.INTERNAL)


class LoaderHarness:
    """One version: its loader, state, error, RAM reservation and (when READY) its shared servable."""

    def __init__(self, name: str, version: int, path: Path, loader: VersionLoader) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.loader = loader
        self.harness_state = HarnessState.NEW
        self.error: ServingError | None = None
        self.shared: SharedServable | None = None
        self.ram_bytes = 0
        self.fingerprint = fingerprint(path)
        self.load_seconds = 0.0
        self.unload_seconds = 0.0

    @property
    def state(self) -> ManagerState:
        """TF Serving's servable state, what status reports."""
        return REPORTED[self.harness_state]

    @property
    def holds_ram(self) -> bool:
        return self.harness_state in HOLDS_RAM

    def _enter(self, new: HarnessState, error: ServingError | None = None) -> None:
        """The one place a version changes state."""
        if new not in TRANSITIONS[self.harness_state]:
            raise IllegalTransition(
                f"model {self.name} version {self.version}: {self.harness_state.value} -> {new.value}"
            )
        log.debug("model %s version %d: %s -> %s", self.name, self.version, self.harness_state.value, new)
        self.harness_state = new
        if error is not None:
            self.error = error
        if new in (HarnessState.ERROR, HarnessState.DISABLED):
            self.shared, self.ram_bytes = None, 0

    # ---- load ------------------------------------------------------------------------------------------
    async def load(self, run_blocking: RunBlocking, free_bytes: Callable[[], int], budget: int) -> bool:
        """NEW -> LOADING -> READY, or -> ERROR (refused by the budget or failed). True when READY."""
        started = time.perf_counter()
        try:
            estimate = await run_blocking(self.loader.estimate_ram_bytes)
            self._reserve(estimate, free_bytes, budget)
            servable = await run_blocking(self.loader.load)
        except Exception as exc:
            self._enter(HarnessState.ERROR, as_serving_error(exc))
            assert self.error is not None
            log.error("model %s version %d: load failed: %s", self.name, self.version, self.error.message)
            return False
        self.ram_bytes = max(self.ram_bytes, servable.ram_bytes)  # the loader's post-load re-estimate
        self.shared = SharedServable(servable)
        self._enter(HarnessState.READY)
        self.load_seconds = time.perf_counter() - started
        log.info(
            "model %s version %d: AVAILABLE after %d ms", self.name, self.version, self.load_seconds * 1000
        )
        return True

    def _reserve(self, estimate: int, free_bytes: Callable[[], int], budget: int) -> None:
        """NEW -> LOADING holding ``estimate`` bytes, or ``ResourceExhausted``. Synchronous on purpose: no
        other load can run between reading the free RAM and reserving it (loads run concurrently with
        ``--num_load_threads`` > 1; an ``await`` here would let two of them take the same free RAM)."""
        free = free_bytes()
        log.info(
            "model %s version %d: estimated RAM %.1f MiB (%.1f MiB of the budget free)",
            self.name,
            self.version,
            estimate / 2**20,
            free / 2**20,
        )
        if estimate > free:
            raise ResourceExhausted(
                f"Insufficient resources to load model {self.name} version {self.version}: it needs "
                f"about {estimate / 2**20:.1f} MiB of RAM but only {max(free, 0) / 2**20:.1f} MiB of "
                f"the {budget / 2**20:.1f} MiB budget is free"
            )
        self._enter(HarnessState.LOADING)
        self.ram_bytes = estimate  # counted by the manager's next free_bytes() (LOADING holds RAM)

    # ---- unload ----------------------------------------------------------------------------------------
    def quiesce(self) -> None:
        """READY -> QUIESCING: no new handle from now on (synchronous, so no request slips in)."""
        self._enter(HarnessState.QUIESCING)
        assert self.shared is not None
        self.shared.retire()

    async def unload(self, run_blocking: RunBlocking) -> None:
        """QUIESCING -> QUIESCED (the last handle released) -> UNLOADING -> DISABLED."""
        shared = self.shared
        assert shared is not None
        if shared.refs:
            log.info(
                "model %s version %d: waiting for %d requests to finish", self.name, self.version, shared.refs
            )
        await shared.wait_released()
        self._enter(HarnessState.QUIESCED)
        self._enter(HarnessState.UNLOADING)
        started = time.perf_counter()
        try:
            await run_blocking(lambda: self.loader.unload(shared.servable))
        finally:
            self.unload_seconds = time.perf_counter() - started
            self._enter(HarnessState.DISABLED)
        log.info("model %s version %d: unloaded", self.name, self.version)
