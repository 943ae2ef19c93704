"""Admin operations on the desired state: pin (promote), roll back, back to latest, labels, and the canary
(start / reweigh, abort, promote, automatic rollback).

Each operation holds the lock of the model's models.config (``DesiredStore.transaction``: one change at a
time across every gateway, so none is lost), reads the file fresh, checks its input, writes the new state
(generation + 1) and applies it to every replica (``Reconciler.apply``), waiting for the versions it needs.
When a version fails to load, the previous state is written back and re-applied, and the error is raised.

A new label whose version is not loaded yet is applied in two writes (TF Serving only labels AVAILABLE
versions): first the version is loaded with the label left out, then the label is added.

"The previous version" for a rollback is the top of ``history``; with no history it is the highest version
below the current one among those on disk and those the replicas serve.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator

from gateway.errors import BadRequest, Conflict, GatewayError, ModelNotFound, NotFound
from gateway.metrics import Metrics
from gateway.rollout.catalog import Catalog
from gateway.rollout.desired import Canary, Desired, ModelState, Transaction
from gateway.rollout.reconciler import Reconciler

__all__ = ["CANARY_LABEL", "STABLE_LABEL", "Operations"]

log = logging.getLogger("gateway.operations")
LABEL = re.compile(r"^[A-Za-z0-9_]{1,64}$")
STABLE_LABEL = "stable"
CANARY_LABEL = "canary"


class Operations:
    def __init__(self, catalog: Catalog, reconciler: Reconciler, metrics: Metrics) -> None:
        self._catalog = catalog
        self._reconciler = reconciler
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def _edit(self, name: str) -> AsyncIterator[tuple[Transaction, Desired, ModelState]]:
        """The model's file locked and read fresh; a copy of its state to change and ``_commit``."""
        async with self._catalog.store_for(name).transaction() as txn:
            new = txn.desired.copy()
            if name not in new.models:
                raise Conflict(
                    f"model {name!r} is no longer in {txn.store.path.name} (edited by hand); restart the "
                    "gateways to take up the new list of models"
                )
            yield txn, new, new.models[name]

    def _check_on_disk(self, name: str, version: int) -> None:
        disk = self._catalog.repository.versions(name)
        if disk is not None and version not in disk:
            raise ModelNotFound(name, version)

    async def _current(self, name: str, state: ModelState) -> int | None:
        if state.pinned is not None:
            return state.pinned
        return (await self._reconciler.observe(name)).current()

    async def _commit(self, txn: Transaction, name: str, new: Desired, wait_for: list[int]) -> Desired:
        old = txn.desired.copy()
        before, after = old.models[name], new.models[name]
        added = frozenset(k for k, v in after.labels.items() if before.labels.get(k) != v)
        try:
            if added and wait_for:
                omit = {name: added}
                staged = txn.commit(new.copy(), omit)
                await self._reconciler.apply(txn.store, staged, {name: wait_for}, omit)
                wait_for = []
            committed = txn.commit(new)
            await self._reconciler.apply(txn.store, committed, {name: wait_for})
        except GatewayError as exc:
            restored = old.copy()
            restored.models[name].event("refused", reason=exc.message)
            committed = txn.commit(restored)
            try:
                await self._reconciler.apply(txn.store, committed, {})
            except GatewayError as again:
                log.error("model %s: restoring the previous state failed too: %s", name, again.message)
            raise
        self._metrics.desired_generation.labels(txn.store.path.name).set(committed.generation)
        return committed

    @staticmethod
    def _drop_canary(state: ModelState, why: str) -> None:
        if state.canary is not None:
            state.event("canary_ended", version=state.canary.version, reason=why)
            state.canary = None
            state.labels.pop(CANARY_LABEL, None)

    # -- versions ------------------------------------------------------------------------------------------

    async def promote(self, name: str, version: int) -> Desired:
        self._check_on_disk(name, version)
        async with self._edit(name) as (txn, new, state):
            current = await self._current(name, state)
            self._drop_canary(state, f"version {version} promoted")
            if current != version:
                state.remember(current)
            state.pinned = version
            state.event("promoted", version=version, previous=current)
            done = await self._commit(txn, name, new, [version])
        log.info("admin: model %s pinned to version %d (was %s)", name, version, current)
        return done

    async def rollback(self, name: str) -> Desired:
        async with self._edit(name) as (txn, new, state):
            view = await self._reconciler.observe(name)
            current = state.pinned if state.pinned is not None else view.current()
            target = None
            while state.history and target is None:
                candidate = state.history.pop()
                target = candidate if candidate != current else None
            if target is None:
                served = {v for r in view.replicas for v in r.available}
                known = served | set(self._catalog.repository.versions(name) or [])
                older = [v for v in known if current is not None and v < current]
                if not older:
                    raise Conflict(f"model {name!r} has no version before {current} to roll back to")
                target = max(older)
            self._drop_canary(state, "rolled back")
            state.pinned = target
            state.event("rolled_back", version=target, previous=current)
            done = await self._commit(txn, name, new, [target])
        log.info("admin: model %s rolled back from version %s to %d", name, current, target)
        return done

    async def latest(self, name: str) -> Desired:
        async with self._edit(name) as (txn, new, state):
            self._drop_canary(state, "back to the configured policy")
            state.remember(state.pinned)
            state.pinned = None
            state.event("latest")
            done = await self._commit(txn, name, new, [])
        log.info("admin: model %s back to its configured policy", name)
        return done

    async def set_label(self, name: str, label: str, version: int | None) -> Desired:
        if not LABEL.match(label):
            raise BadRequest(f"label {label!r} must match [A-Za-z0-9_]+ (at most 64 characters)")
        if version is not None:
            self._check_on_disk(name, version)
        async with self._edit(name) as (txn, new, state):
            if label == CANARY_LABEL and state.canary is not None:
                raise Conflict("the canary label belongs to the running canary; use /canary to change it")
            if version is None:
                if label not in state.labels:
                    raise NotFound(f"model {name!r} has no label {label!r}")
                del state.labels[label]
                state.event("label_removed", label=label)
                done = await self._commit(txn, name, new, [])
            else:
                state.labels[label] = version
                state.event("labelled", label=label, version=version)
                done = await self._commit(txn, name, new, [version])
        log.info("admin: model %s label %s -> %s", name, label, version)
        return done

    # -- canary --------------------------------------------------------------------------------------------

    async def set_canary(self, name: str, version: int, weight: float, shadow: float) -> Desired:
        """Serve ``weight`` % of requests with ``version`` next to the stable one (mirror ``shadow`` %)."""
        self._check_on_disk(name, version)
        async with self._edit(name) as (txn, new, state):
            canary = state.canary
            if canary is not None and canary.version == version:
                canary.weight, canary.shadow, canary.status, canary.reason = weight, shadow, "running", None
                state.event("canary_weight", version=version, weight=weight, shadow=shadow)
                done = await self._commit(txn, name, new, [])
            else:
                stable = canary.stable if canary is not None else await self._current(name, state)
                if stable is None:
                    raise Conflict(f"model {name!r} serves no version yet: nothing to compare a canary with")
                if version == stable:
                    raise BadRequest(f"version {version} is the stable version of {name!r}; pick another one")
                state.pinned = stable
                state.labels[STABLE_LABEL] = stable
                state.labels[CANARY_LABEL] = version
                state.canary = Canary(version=version, stable=stable, weight=weight, shadow=shadow)
                state.event("canary_started", version=version, stable=stable, weight=weight, shadow=shadow)
                done = await self._commit(txn, name, new, [stable, version])
        self._metrics.canary_weight.labels(name).set(weight)
        log.info(
            "admin: model %s canary version %d at %.1f %% (shadow %.1f %%)", name, version, weight, shadow
        )
        return done

    async def clear_canary(self, name: str) -> Desired:
        async with self._edit(name) as (txn, new, state):
            if state.canary is None:
                raise NotFound(f"model {name!r} has no canary")
            self._drop_canary(state, "aborted")
            done = await self._commit(txn, name, new, [])
        self._metrics.canary_weight.labels(name).set(0)
        return done

    async def promote_canary(self, name: str) -> Desired:
        async with self._edit(name) as (txn, new, state):
            canary = state.canary
            if canary is None:
                raise NotFound(f"model {name!r} has no canary to promote")
            self._drop_canary(state, "promoted to stable")
            state.remember(canary.stable)
            state.pinned = canary.version
            state.labels[STABLE_LABEL] = canary.version
            state.event("promoted", version=canary.version, previous=canary.stable)
            done = await self._commit(txn, name, new, [canary.version])
        self._metrics.canary_weight.labels(name).set(0)
        return done

    async def auto_rollback(self, name: str, version: int, reason: str, figures: dict[str, float]) -> None:
        """Weight of the running canary ``version`` to 0, with the reason and the window's figures."""
        async with self._edit(name) as (txn, new, state):
            canary = state.canary
            if canary is None or canary.version != version or canary.status != "running":
                return  # another gateway was first, or an admin changed it meanwhile
            canary.weight, canary.shadow, canary.status, canary.reason = 0.0, 0.0, "rolled_back", reason
            state.event("canary_auto_rollback", version=version, reason=reason, **figures)
            await self._commit(txn, name, new, [])
        self._metrics.canary_weight.labels(name).set(0)
        log.warning("model %s: canary version %d rolled back automatically: %s", name, version, reason)
