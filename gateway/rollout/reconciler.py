"""The reconciler: what every replica of a model serves, applying the desired state to all of them, and a
background loop that repairs replicas that drifted from it.

Contract
--------
- ``observe(model)`` asks every replica (``ModelClient.replicas``: the list in settings, or every address the
  model's server name resolves to) in parallel for its versions, and measures which version answers a
  request that names no version (GetModelMetadata without a version: ``ReplicaView.answers``); nothing is
  changed. Each call has ``GATEWAY_REPLICA_STATUS_TIMEOUT_SECONDS``: a replica that does not answer in time
  (down, hung, partitioned) is reported unreachable, never an error of the whole call. ``converged`` is true
  when every replica answers and all serve the same AVAILABLE versions - exactly the wanted ones when the
  desired state pins them, with the expected version answering unversioned requests.
- ``apply(store, desired, wait_for)`` sends each replica in parallel the FULL desired config of the
  models.config it polls (HandleReloadConfigRequest replaces a server's whole config; deadline
  ``GATEWAY_ADMIN_RELOAD_TIMEOUT_SECONDS``), then waits until each wanted version is AVAILABLE on every
  replica that took the config, polling with the short status deadline. A replica that does not confirm
  (unreachable, reload or status past its deadline) is reported and converges by itself: it reads the same
  file at start and on every poll, and ``run()`` repairs it. A version that fails to load raises NotFound.
  ``apply`` holds no lock: callers write the file first and apply after.
- ``run()`` re-reads the files every ``GATEWAY_STATE_REFRESH_SECONDS`` and re-sends the full desired config to
  a replica whose served versions or labels drifted (a restart from an older file, a reload by someone else).
  It holds no lock either: it skips a file while this gateway applies a change to it, and re-reads the file
  right before a push (a newer generation there waits for the next round).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import grpc

from gateway.errors import Conflict, GatewayError, NotFound, UpstreamError
from gateway.metrics import Metrics
from gateway.rollout.answering import live_labels
from gateway.rollout.catalog import Catalog
from gateway.rollout.desired import Desired, DesiredStore, ModelState, render_config, render_entry
from gateway.settings import Settings
from gateway.upstream.client import ModelClient
from guard.logs import RateLimitedLog
from tfs_protos.tensorflow_serving.apis import get_model_status_pb2

__all__ = ["ClusterView", "Reconciler", "ReplicaView", "ServedVersion", "wanted_versions"]

log = logging.getLogger("gateway.reconciler")
# A replica that keeps drifting (or a file that stays broken) is reported, not logged every refresh: a line
# a minute after the first three.
drift_log = RateLimitedLog(log, rate=1 / 60, burst=3)
broken_log = RateLimitedLog(log, rate=1 / 60, burst=3)
LOAD_WAIT_SECONDS = 60.0
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
_State = get_model_status_pb2.ModelVersionStatus.State


@dataclass(frozen=True)
class ServedVersion:
    """One version as a model server reports it (GetModelStatus)."""

    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error: str | None  # status.error_message when error_code is not OK (e.g. a version that failed to load)


@dataclass
class ReplicaView:
    address: str
    reachable: bool
    versions: list[ServedVersion] = field(default_factory=list)
    error: str | None = None
    answers: int | None = None  # measured: the version that answered a request naming no version

    @property
    def id(self) -> str:
        """A name for the replica that every gateway agrees on and that reveals no internal address."""
        return "r-" + hashlib.sha256(self.address.encode()).hexdigest()[:8]

    @property
    def available(self) -> set[int]:
        return {v.version for v in self.versions if v.state == "AVAILABLE"}


@dataclass
class ClusterView:
    model: str
    replicas: list[ReplicaView]
    wanted: set[int] | None

    @property
    def converged(self) -> bool:
        if not self.replicas or not all(r.reachable and r.error is None for r in self.replicas):
            return False
        sets = [r.available for r in self.replicas]
        if self.wanted is not None:
            head = max(self.wanted)  # TF Serving answers unversioned requests with the highest loaded one
            return all(s == self.wanted for s in sets) and all(
                r.answers in (None, head) for r in self.replicas
            )
        return bool(sets[0]) and all(s == sets[0] for s in sets)

    @property
    def answers(self) -> int | None:
        """The version every replica answered an unversioned request with (None: none measured, or they
        differ - each replica's own is in ``replicas``)."""
        measured = {r.answers for r in self.replicas if r.answers is not None}
        return measured.pop() if len(measured) == 1 else None

    def current(self) -> int | None:
        available = [max(r.available) for r in self.replicas if r.available]
        return max(available) if available else None


def _unreachable(error: GatewayError) -> bool:
    return isinstance(error, UpstreamError) and error.code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )


def wanted_versions(state: ModelState | None) -> set[int] | None:
    """The exact versions the desired state asks for, or None when the server's own policy decides."""
    if state is None or state.pinned is None:
        return None
    return {state.pinned, *live_labels(state).values()}


def _served(reply: get_model_status_pb2.GetModelStatusResponse) -> list[ServedVersion]:
    out = []
    for status in reply.model_version_status:
        code = status.status.error_code
        error = (status.status.error_message or f"failed (error code {code})") if code != 0 else None
        out.append(ServedVersion(status.version, _State.Name(status.state), error))
    return sorted(out, key=lambda v: v.version)


class Reconciler:
    def __init__(self, settings: Settings, client: ModelClient, catalog: Catalog, metrics: Metrics) -> None:
        self._settings = settings
        self._client = client
        self._catalog = catalog
        self._metrics = metrics
        self._applying: dict[DesiredStore, int] = {}  # changes this gateway is applying, per file

    # -- observing -----------------------------------------------------------------------------------------

    async def replica(self, model: str, address: str, measure: bool = True) -> ReplicaView:
        """One replica's versions; with ``measure``, also the version that answers an unversioned request."""
        timeout = self._settings.replica_status_timeout_seconds
        try:
            reply = await self._client.status(model, address=address, timeout=timeout)
        except UpstreamError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:
                return ReplicaView(address, True, [], None)
            return ReplicaView(address, not _unreachable(exc), [], exc.message)
        view = ReplicaView(address, True, _served(reply))
        if measure and view.available:
            try:
                answered = await self._client.metadata(model, address=address, timeout=timeout)
            except UpstreamError:
                pass  # measured again on the next look; the versions above still say what it serves
            else:
                view.answers = answered.model_spec.version.value or None
        return view

    async def observe(self, model: str, state: ModelState | None = None) -> ClusterView:
        addresses = await self._client.replicas(model)
        views = await asyncio.gather(*(self.replica(model, a) for a in addresses))
        view = ClusterView(model, list(views), wanted_versions(state))
        self._metrics.replicas_converged.labels(model).set(1.0 if view.converged else 0.0)
        return view

    # -- applying ------------------------------------------------------------------------------------------

    async def _targets(self, store: DesiredStore) -> dict[str, list[str]]:
        """Replica address -> the models of ``store`` it serves."""
        targets: dict[str, list[str]] = {}
        for name in self._catalog.models_in(store):
            for address in await self._client.replicas(name):
                targets.setdefault(address, []).append(name)
        return targets

    async def _push(
        self,
        store: DesiredStore,
        desired: Desired,
        address: str,
        names: list[str],
        omit: dict[str, frozenset[str]] | None = None,
    ) -> GatewayError | None:
        newer = store.current()
        superseded = newer is not None and newer.generation > desired.generation
        if superseded and newer is not None:
            desired, omit = newer, None  # a later change was written meanwhile: the file is the truth
        config = render_config(desired, self._catalog.repository.versions, names, omit)
        try:
            await self._client.reload_config(
                address, config, timeout=self._settings.admin_reload_timeout_seconds
            )
        except GatewayError as exc:
            log.warning("replica %s did not take generation %d: %s", address, desired.generation, exc.message)
            # a refusal of a later change is that change's to report, not this one's
            return None if superseded and not _unreachable(exc) else exc
        return None

    async def apply(
        self,
        store: DesiredStore,
        desired: Desired,
        wait_for: dict[str, list[int]],
        omit: dict[str, frozenset[str]] | None = None,
        skip: Mapping[str, str | None] | None = None,
    ) -> dict[str, str | None]:
        """Push to every replica; wait for ``wait_for`` versions where the push worked. Address -> error.

        A replica that cannot be reached is reported (it converges from the file); one that answers and
        refuses the config raises its error, so the caller restores the previous state. ``skip``: replicas
        (address -> why) that did not confirm a moment ago, reported again without another wait."""
        passed = {a: e for a, e in (skip or {}).items() if e is not None}
        targets = {a: n for a, n in (await self._targets(store)).items() if a not in passed}
        errors = await asyncio.gather(
            *(self._push(store, desired, a, names, omit) for a, names in targets.items())
        )
        refused = [e for e in errors if e is not None and not _unreachable(e)]
        if refused:
            raise refused[0]
        report = {a: (e.message if e else None) for a, e in zip(targets, errors, strict=True)}
        reached = [a for a, e in report.items() if e is None]
        if not reached:
            log.warning("no replica reachable for generation %d of %s", desired.generation, store.path)

        def superseded() -> bool:
            latest = store.current()
            return latest is not None and latest.generation > desired.generation

        async def wait(address: str) -> None:
            versions = [(n, v) for n, vs in wait_for.items() if n in targets[address] for v in vs]
            for name, version in versions:
                lost = await self._wait_available(name, version, address, superseded)
                if lost is not None:
                    report[address] = lost
                    return

        await asyncio.gather(*(wait(a) for a in reached))
        return {**report, **passed}

    @contextlib.contextmanager
    def applying(self, store: DesiredStore) -> Iterator[None]:
        """Mark a change of ``store`` under way on this gateway: the background repair leaves it alone."""
        self._applying[store] = self._applying.get(store, 0) + 1
        try:
            yield
        finally:
            self._applying[store] -= 1

    async def _wait_available(
        self, name: str, version: int, address: str, superseded: Callable[[], bool]
    ) -> str | None:
        """None once ``version`` is AVAILABLE on ``address`` (or a later change superseded this one); why
        not when the replica stops answering its status within the short deadline (it converges later).
        Raises when the version fails to load."""
        deadline = time.monotonic() + LOAD_WAIT_SECONDS
        timeout = self._settings.replica_status_timeout_seconds
        while time.monotonic() < deadline:
            if superseded():
                return None
            try:
                reply = await self._client.status(name, version=version, address=address, timeout=timeout)
            except UpstreamError as exc:
                if _unreachable(exc):  # gone or hung meanwhile: it converges from the file when back
                    return f"did not confirm version {version}: {exc.message}"
                if exc.code is not grpc.StatusCode.NOT_FOUND:
                    raise
            else:
                for status in reply.model_version_status:
                    if status.state == AVAILABLE:
                        return None
                    if status.state == END and status.status.error_code != 0:
                        raise NotFound(
                            f"version {version} of model {name!r} failed to load: "
                            f"{status.status.error_message}"
                        )
            await asyncio.sleep(0.1)
        raise Conflict(
            f"version {version} of model {name!r} did not become AVAILABLE in {LOAD_WAIT_SECONDS:.0f} s"
        )

    # -- repairing -----------------------------------------------------------------------------------------

    async def _drifted(self, name: str, state: ModelState, address: str) -> bool:
        view = await self.replica(name, address, measure=False)
        if not view.reachable or view.error is not None:
            return False  # nothing to repair through a dead connection; it converges from the file
        if not view.versions:
            return True  # the model is missing from that replica's config
        if any(v.state in ("START", "LOADING", "UNLOADING") for v in view.versions):
            return False  # a change is under way there
        wanted = wanted_versions(state)
        if wanted is None:
            failed = {v.version for v in view.versions if v.error is not None}
            wanted = self._policy_versions(name, state, failed)
        if wanted is not None and view.available != wanted:
            return True
        for label in live_labels(state, self._catalog.repository.versions(name)):
            try:
                await self._client.metadata(
                    name, label=label, address=address, timeout=self._settings.replica_status_timeout_seconds
                )
            except UpstreamError as exc:
                return exc.code is not grpc.StatusCode.UNAVAILABLE  # a dead link repairs nothing
        return False

    def _policy_versions(self, name: str, state: ModelState, failed: set[int]) -> set[int] | None:
        """What the model's own policy serves, from the versions on disk (None when unreadable): so a rogue
        reload that pins an unpinned model is seen too. Versions that failed to load are left out."""
        known = self._catalog.repository.versions(name)
        if not known:
            return None
        usable = sorted(set(known) - failed)
        policy = render_entry(state, known).model_version_policy
        if policy.HasField("specific"):
            return set(policy.specific.versions) - failed
        if policy.HasField("all"):
            return set(usable)
        return set(usable[-(policy.latest.num_versions or 1) :]) if usable else None

    async def reconcile_store(self, store: DesiredStore) -> int:
        """Repair the replicas of one file; returns how many were re-sent the desired config. No lock is
        held across the checks and pushes (a hung replica must not block admin calls): a change this gateway
        is applying is left alone, and the file is re-read right before each push."""
        repaired = 0
        if self._applying.get(store) or not store.path.exists():
            return 0
        desired = store.current()
        if desired is None:
            return 0
        self._catalog.sync(store, desired)  # models another gateway added or removed

        async def repair(address: str, names: list[str]) -> bool:
            drift = [
                n for n in names if n in desired.models and await self._drifted(n, desired.models[n], address)
            ]
            if not drift:
                return False
            latest = store.current()
            if self._applying.get(store) or latest is None or latest.generation != desired.generation:
                return False  # changed meanwhile: the next round looks again
            drift_log.warning(
                "replica %s drifted from generation %d (%s); re-sending the full desired config",
                address,
                desired.generation,
                ", ".join(drift),
            )
            return await self._push(store, desired, address, names) is None

        targets = await self._targets(store)
        for done in await asyncio.gather(*(repair(a, n) for a, n in targets.items())):
            if done:
                repaired += 1
                self._metrics.reconcile_repairs.inc()
        return repaired

    async def reconcile_once(self) -> None:
        for store in self._catalog.stores:
            await self.reconcile_store(store)
            if store.error:
                self._metrics.desired_refusals.inc()
                broken_log.error("%s (serving the last good state)", store.error)
            desired = store.last_good
            for name in self._catalog.models_in(store):
                await self.observe(name, desired.models.get(name) if desired else None)

    async def run(self) -> None:
        """Background loop: reconcile every ``GATEWAY_STATE_REFRESH_SECONDS`` until cancelled."""
        while True:
            await asyncio.sleep(self._settings.state_refresh_seconds)
            try:
                await self.reconcile_once()
            except Exception:  # never let the loop die
                log.exception("reconcile failed")
