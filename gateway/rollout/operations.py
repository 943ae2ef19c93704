"""Admin operations on the desired state: pin (promote), roll back, back to latest, labels, and the canary
(start / reweigh, abort, promote, automatic rollback).

Each operation has three steps, and the cluster-wide lock of the model's models.config is held only for the
middle one, never across a network wait (a hung replica must not stall every admin call on every gateway):

1. what the replicas serve is observed when the change needs it (short per-replica deadlines);
2. under the lock (``DesiredStore.transaction``: one write at a time across every gateway, so none is lost)
   the file is read fresh, the input checked, the new state written (generation + 1);
3. the new state is applied to every replica in parallel (``Reconciler.apply``), waiting for the versions it
   needs on the replicas that confirm; those that do not within their deadline are named in the reply
   (``Desired.unconfirmed``) and converge later (the reconciler, and their own poll of the file).

When a version fails to load, the previous state is written back and re-applied (only when nobody wrote the
file since: a later change wins), and the error is raised.

"Pinned means served": a request that names no version gets the answering version (the pin; see
``gateway.rollout.answering``) on every replica. TF Serving answers such requests with the highest loaded
version, so a label may point at the answering version or below (409 above it); a promote, rollback or back
to latest moves the ``stable`` label to the new pin and drops the labels above the new answering version (an
event says so). A running canary
is the one exception: its candidate is loaded and the gateway names the version of every request it splits.

A new label whose version is not loaded yet is applied in two writes (TF Serving only labels AVAILABLE
versions): first the version is loaded with the label left out, then the label is added.

"The previous version" for a rollback is the top of ``history``; with no history it is the highest version
below the current one among those on disk and those the replicas serve.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from gateway.errors import BadRequest, Conflict, GatewayError, ModelNotFound, NotFound
from gateway.metrics import Metrics
from gateway.rollout.answering import CANARY_LABEL, answering_version, live_labels
from gateway.rollout.catalog import Catalog
from gateway.rollout.desired import Canary, Desired, ModelState
from gateway.rollout.reconciler import ClusterView, Reconciler

__all__ = ["CANARY_LABEL", "STABLE_LABEL", "Operations"]

log = logging.getLogger("gateway.operations")
LABEL = re.compile(r"[A-Za-z0-9_]{1,64}")  # fullmatch: `$` would take a trailing newline
MAX_LABELS = 64  # per model: the desired state is written into models.config and read on every change
STABLE_LABEL = "stable"
# Changes one model's state in place and returns the versions to wait for, or None: nothing to write.
Edit = Callable[[ModelState], "list[int] | None"]
# Completes a change once its versions are loaded (e.g. a starting canary starts taking traffic).
Finish = Callable[[ModelState], None]


class Operations:
    def __init__(self, catalog: Catalog, reconciler: Reconciler, metrics: Metrics) -> None:
        self._catalog = catalog
        self._reconciler = reconciler
        self._metrics = metrics

    def _check_on_disk(self, name: str, version: int) -> None:
        disk = self._catalog.repository.versions(name)
        if disk is not None and version not in disk:
            raise ModelNotFound(name, version)

    def _peek(self, name: str) -> ModelState | None:
        """The model's state as the file says now, read without the lock (to decide what to observe)."""
        desired = self._catalog.store_for(name).current()
        return desired.models.get(name) if desired is not None else None

    async def _observed_current(self, name: str) -> int | None:
        """The version the replicas serve now when the model is not pinned (a network wait: before the lock)."""
        state = self._peek(name)
        if state is not None and state.pinned is not None:
            return None
        return (await self._reconciler.observe(name)).current()

    async def _change(self, name: str, edit: Edit, finish: Finish | None = None) -> Desired:
        """Step 2 under the lock, step 3 without it (module docstring). With a new label to load first,
        the second write re-reads the file and applies ``finish`` to the model's state then."""
        store = self._catalog.store_for(name)
        known = self._catalog.repository.versions(name)
        async with store.transaction() as txn:
            old = txn.desired.copy()
            new = old.copy()
            if name not in new.models:
                raise Conflict(
                    f"model {name!r} is no longer in {store.path.name} (edited by hand); restart the "
                    "gateways to take up the new list of models"
                )
            wait_for = edit(new.models[name])
            if wait_for is None:
                return old
            before, after = live_labels(old.models[name], known), live_labels(new.models[name], known)
            added = frozenset(k for k, v in after.items() if before.get(k) != v)
            omit = {name: added} if added and wait_for else None
            if omit is None and finish is not None:
                finish(new.models[name])
            written = txn.commit(new.copy(), omit)
        with self._reconciler.applying(store):
            try:
                report = await self._reconciler.apply(store, written, {name: wait_for}, omit)
                if omit is not None:
                    async with store.transaction() as txn:
                        fresh = txn.desired.copy()  # the header holds the labels; now the body gets them
                        if finish is not None and name in fresh.models:
                            finish(fresh.models[name])
                        written = txn.commit(fresh)
                    report = await self._reconciler.apply(store, written, {}, skip=report)
            except GatewayError as exc:
                await self._restore(name, old, written.generation, exc)
                raise
        written.unconfirmed = {a: e for a, e in report.items() if e is not None}
        self._metrics.desired_generation.labels(store.path.name).set(written.generation)
        return written

    async def _restore(self, name: str, old: Desired, generation: int, exc: GatewayError) -> None:
        """Write the state before a refused change back, unless someone wrote the file since."""
        store = self._catalog.store_for(name)
        async with store.transaction() as txn:
            if txn.desired.generation != generation:
                log.warning("model %s: not restoring after %s: the file changed since", name, exc.message)
                return
            restored = old.copy()
            restored.models[name].event("refused", reason=exc.message)
            committed = txn.commit(restored)
        try:
            await self._reconciler.apply(store, committed, {})
        except GatewayError as again:
            log.error("model %s: restoring the previous state failed too: %s", name, again.message)

    @staticmethod
    def _drop_canary(state: ModelState, why: str) -> None:
        if state.canary is not None:
            state.event("canary_ended", version=state.canary.version, reason=why)
            state.canary = None
            state.labels.pop(CANARY_LABEL, None)

    def _follow_pin(self, name: str, state: ModelState) -> None:
        """After a new pin (or none): ``stable`` names the pin; a label above the answering version would
        answer requests that name no version (TF Serving's highest loaded version), so it is dropped."""
        if state.pinned is not None and STABLE_LABEL in state.labels:
            state.labels[STABLE_LABEL] = state.pinned
        head = answering_version(state, self._catalog.repository.versions(name))
        for label, version in sorted(state.labels.items()):
            if head is not None and version > head:
                del state.labels[label]
                state.event(
                    "label_dropped",
                    label=label,
                    version=version,
                    reason=f"above version {head}, which answers requests that name no version",
                )

    # -- versions ------------------------------------------------------------------------------------------

    async def promote(self, name: str, version: int) -> Desired:
        self._check_on_disk(name, version)
        observed = await self._observed_current(name)
        previous: list[int | None] = [None]

        def edit(state: ModelState) -> list[int]:
            current = previous[0] = state.pinned if state.pinned is not None else observed
            self._drop_canary(state, f"version {version} promoted")
            if current != version:
                state.remember(current)
            state.pinned = version
            self._follow_pin(name, state)
            state.event("promoted", version=version, previous=current)
            return [version]

        done = await self._change(name, edit)
        log.info("admin: model %s pinned to version %d (was %s)", name, version, previous[0])
        return done

    async def rollback(self, name: str) -> Desired:
        peek = self._peek(name)
        view: ClusterView | None = None
        if peek is None or peek.pinned is None or not peek.history:
            view = await self._reconciler.observe(name)  # what they serve: before the lock
        moved: list[int | None] = [None, None]

        def edit(state: ModelState) -> list[int]:
            current = state.pinned if state.pinned is not None else (view.current() if view else None)
            target = None
            while state.history and target is None:
                candidate = state.history.pop()
                target = candidate if candidate != current else None
            if target is None:
                served = {v for r in view.replicas for v in r.available} if view else set()
                known = served | set(self._catalog.repository.versions(name) or [])
                older = [v for v in known if current is not None and v < current]
                if not older:
                    raise Conflict(f"model {name!r} has no version before {current} to roll back to")
                target = max(older)
            self._drop_canary(state, "rolled back")
            state.pinned = target
            self._follow_pin(name, state)
            state.event("rolled_back", version=target, previous=current)
            moved[:] = [current, target]
            return [target]

        done = await self._change(name, edit)
        log.info("admin: model %s rolled back from version %s to %s", name, moved[0], moved[1])
        return done

    async def latest(self, name: str) -> Desired:
        def edit(state: ModelState) -> list[int]:
            self._drop_canary(state, "back to the configured policy")
            state.remember(state.pinned)
            state.pinned = None
            self._follow_pin(name, state)
            state.event("latest")
            return []

        done = await self._change(name, edit)
        log.info("admin: model %s back to its configured policy", name)
        return done

    async def set_label(self, name: str, label: str, version: int | None) -> Desired:
        if not LABEL.fullmatch(label):
            raise BadRequest(f"label {label!r} must match [A-Za-z0-9_]+ (at most 64 characters)")
        if version is not None:
            self._check_on_disk(name, version)
        known = self._catalog.repository.versions(name)

        def edit(state: ModelState) -> list[int]:
            if label == CANARY_LABEL and state.canary is not None:
                raise Conflict("the canary label belongs to the running canary; use /canary to change it")
            if version is None:
                if label not in state.labels:
                    raise NotFound(f"model {name!r} has no label {label!r}")
                del state.labels[label]
                state.event("label_removed", label=label)
                return []
            head = answering_version(state, known)
            if head is not None and version > head:
                raise Conflict(
                    f"label {label!r} cannot point at version {version}: requests that name no version must "
                    f"get version {head}, and a model server answers them with the highest version it has "
                    f"loaded; promote {version}, or start a canary of it to send it a share of the traffic"
                )
            if label not in state.labels and len(state.labels) >= MAX_LABELS:
                raise Conflict(f"model {name!r} has {MAX_LABELS} labels already; remove one first")
            state.labels[label] = version
            state.event("labelled", label=label, version=version)
            return [version]

        done = await self._change(name, edit)
        log.info("admin: model %s label %s -> %s", name, label, version)
        return done

    # -- canary --------------------------------------------------------------------------------------------

    async def set_canary(self, name: str, version: int, weight: float, shadow: float) -> Desired:
        """Serve ``weight`` % of requests with ``version`` next to the stable one (mirror ``shadow`` %)."""
        self._check_on_disk(name, version)
        observed = await self._observed_current(name)

        def edit(state: ModelState) -> list[int]:
            canary = state.canary
            if canary is not None and canary.version == version:
                canary.weight, canary.shadow, canary.status, canary.reason = weight, shadow, "running", None
                state.event("canary_weight", version=version, weight=weight, shadow=shadow)
                return []
            stable = canary.stable if canary is not None else state.pinned
            stable = stable if stable is not None else observed
            if stable is None:
                raise Conflict(f"model {name!r} serves no version yet: nothing to compare a canary with")
            if version == stable:
                raise BadRequest(f"version {version} is the stable version of {name!r}; pick another one")
            state.pinned = stable
            state.labels[STABLE_LABEL] = stable
            state.labels[CANARY_LABEL] = version
            # "starting" until the candidate is loaded: the gateways split no traffic to it before
            state.canary = Canary(version, stable, weight, shadow, status="starting")
            state.event("canary_started", version=version, stable=stable, weight=weight, shadow=shadow)
            return [stable, version]

        def finish(state: ModelState) -> None:
            canary = state.canary
            if canary is not None and canary.version == version and canary.status == "starting":
                canary.status = "running"

        done = await self._change(name, edit, finish)
        self._metrics.canary_weight.labels(name).set(weight)
        log.info(
            "admin: model %s canary version %d at %.1f %% (shadow %.1f %%)", name, version, weight, shadow
        )
        return done

    async def clear_canary(self, name: str) -> Desired:
        def edit(state: ModelState) -> list[int]:
            if state.canary is None:
                raise NotFound(f"model {name!r} has no canary")
            self._drop_canary(state, "aborted")
            return []

        done = await self._change(name, edit)
        self._metrics.canary_weight.labels(name).set(0)
        return done

    async def promote_canary(self, name: str) -> Desired:
        def edit(state: ModelState) -> list[int]:
            canary = state.canary
            if canary is None:
                raise NotFound(f"model {name!r} has no canary to promote")
            self._drop_canary(state, "promoted to stable")
            state.remember(canary.stable)
            state.pinned = canary.version
            state.labels[STABLE_LABEL] = canary.version
            self._follow_pin(name, state)
            state.event("promoted", version=canary.version, previous=canary.stable)
            return [canary.version]

        done = await self._change(name, edit)
        self._metrics.canary_weight.labels(name).set(0)
        return done

    async def auto_rollback(self, name: str, version: int, reason: str, figures: dict[str, float]) -> None:
        """Weight of the running canary ``version`` to 0, with the reason and the window's figures. Its
        version is no longer loaded (``live_labels``): nothing but the stable version answers."""

        def edit(state: ModelState) -> list[int] | None:
            canary = state.canary
            if canary is None or canary.version != version or canary.status != "running":
                return None  # another gateway was first, or an admin changed it meanwhile
            canary.weight, canary.shadow, canary.status, canary.reason = 0.0, 0.0, "rolled_back", reason
            state.event("canary_auto_rollback", version=version, reason=reason, **figures)
            return []

        await self._change(name, edit)
        self._metrics.canary_weight.labels(name).set(0)
        log.warning("model %s: canary version %d rolled back automatically: %s", name, version, reason)
