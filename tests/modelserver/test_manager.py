"""modelserver.manager: availability-preserving loads, failed loads, RAM budget, labels, handles."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import pytest

from modelserver.errors import (
    FailedPrecondition,
    NotFound,
    ServableNotFound,
    ServingError,
    Unavailable,
    UnknownVersionLabel,
)
from modelserver.manager import AspiredVersionsManager
from modelserver.metrics import Metrics
from modelserver.servable import Servable
from modelserver.state import ManagerState


class FakeLoader:
    """Loads instantly unless told to fail or to block until ``release`` is set."""

    def __init__(self, name: str, version: int, path: Path, script: dict[int, object]) -> None:
        self.name, self.version, self.path = name, version, path
        self.behaviour = script.get(version)
        self.unloaded = False

    def estimate_ram_bytes(self) -> int:
        return int(self.behaviour) if isinstance(self.behaviour, int) else 10

    def load(self) -> Servable:
        if isinstance(self.behaviour, ServingError):
            raise self.behaviour
        if isinstance(self.behaviour, threading.Event):
            assert self.behaviour.wait(10)
        return Servable(self.name, self.version, self.path, {}, {})

    def unload(self, servable: Servable) -> None:
        self.unloaded = True


def make_manager(script: dict[int, object] | None = None, budget: int = 1000) -> AspiredVersionsManager:
    script = script or {}
    return AspiredVersionsManager(
        lambda n, v, p: FakeLoader(n, v, p, script), ram_budget_bytes=budget, metrics=Metrics()
    )


def paths(*versions: int) -> dict[int, Path]:
    return {v: Path(f"/models/m/{v}") for v in versions}


def states(manager: AspiredVersionsManager, name: str = "m") -> dict[int, str]:
    return {r.version: r.state.name for r in manager.status(name)}


def test_latest_specific_and_missing_versions() -> None:
    async def main() -> None:
        manager = make_manager()
        await manager.reconcile("m", paths(1, 2))
        with manager.acquire("m") as handle:
            assert handle.servable.version == 2
        with manager.acquire("m", 1) as handle:
            assert handle.servable.version == 1
        with pytest.raises(ServableNotFound, match=r"Specific\(m, 3\)"):
            manager.acquire("m", 3)
        with pytest.raises(ServableNotFound, match=r"Latest\(other\)") as info:
            manager.acquire("other")
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        assert [r.version for r in manager.status("m")] == [2, 1]  # highest first, like TF Serving

    asyncio.run(main())


def test_new_version_replaces_old_only_after_it_is_available() -> None:
    async def main() -> None:
        gate = threading.Event()
        manager = make_manager({2: gate})
        await manager.reconcile("m", paths(1))
        swap = asyncio.create_task(manager.reconcile("m", paths(2)))
        await asyncio.sleep(0.05)
        assert states(manager) == {2: "LOADING", 1: "AVAILABLE"}
        with manager.acquire("m") as handle:  # still served by v1 while v2 loads
            assert handle.servable.version == 1
        gate.set()
        await swap
        await manager.wait_unloads()
        assert states(manager) == {2: "AVAILABLE", 1: "END"}
        with manager.acquire("m") as handle:
            assert handle.servable.version == 2

    asyncio.run(main())


def test_failed_load_is_reported_and_never_replaces_the_serving_version() -> None:
    async def main() -> None:
        manager = make_manager({2: ServingError("corrupt saved_model.pb", code=grpc.StatusCode.DATA_LOSS)})
        await manager.reconcile("m", paths(1))
        await manager.reconcile("m", paths(2))  # latest 1 now aspires only the broken v2
        await manager.wait_unloads()
        records = {r.version: r for r in manager.status("m")}
        assert records[1].state == ManagerState.AVAILABLE
        assert records[2].state == ManagerState.END
        assert records[2].error is not None and "corrupt" in records[2].error.message
        with manager.acquire("m") as handle:
            assert handle.servable.version == 1
        await manager.reconcile("m", paths(2))  # an unchanged failed version is not retried
        assert manager.status("m", 2)[0].error is not None

    asyncio.run(main())


def test_ram_budget_refuses_a_version_that_does_not_fit() -> None:
    async def main() -> None:
        manager = make_manager({1: 600, 2: 600}, budget=1000)
        await manager.reconcile("m", paths(1))
        await manager.reconcile("m", paths(2))
        record = manager.status("m", 2)[0]
        assert record.state == ManagerState.END
        assert record.error is not None and record.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Insufficient resources" in record.error.message
        assert manager.available_versions("m") == [1]

    asyncio.run(main())


def test_request_started_on_old_version_finishes_on_it() -> None:
    async def main() -> None:
        manager = make_manager()
        await manager.reconcile("m", paths(1))
        handle = manager.acquire("m")
        await manager.reconcile("m", paths(2))
        await asyncio.sleep(0.05)
        assert states(manager)[1] == "UNLOADING"  # retired, but a request still holds it
        assert handle.servable.version == 1
        with pytest.raises(ServableNotFound):  # no new requests reach a retiring version
            manager.acquire("m", 1)
        handle.release()
        await manager.wait_unloads()
        assert states(manager) == {2: "AVAILABLE", 1: "END"}

    asyncio.run(main())


def test_removed_model_is_unloaded_and_nothing_available_is_unavailable() -> None:
    async def main() -> None:
        manager = make_manager()
        await manager.reconcile("m", paths(1))
        await manager.remove_model("m")
        await manager.wait_unloads()
        assert states(manager) == {1: "END"}
        with pytest.raises(Unavailable, match="no version of model m is available"):
            manager.acquire("m")
        with pytest.raises(NotFound, match="Could not find version 9 of model m"):
            manager.status("m", 9)
        with pytest.raises(NotFound, match="Could not find any versions of model x"):
            manager.status("x")

    asyncio.run(main())


def test_labels_follow_tf_serving_rules() -> None:
    async def main() -> None:
        manager = make_manager()
        await manager.reconcile("m", paths(1, 2))  # latest 1 would drop v1; reconcile takes what it is given
        manager.set_labels("m", {"stable": 1, "canary": 2}, allow_unavailable=False)
        with manager.acquire("m", label="stable") as handle:
            assert handle.servable.version == 1
        with pytest.raises(UnknownVersionLabel, match="Unrecognized servable version label: beta"):
            manager.acquire("m", label="beta")
        with pytest.raises(FailedPrecondition, match="version 3 of model m, which is not currently"):
            manager.set_labels("m", {"stable": 3}, allow_unavailable=False)
        # --allow_version_labels_for_unavailable_models: only a new label may point at an unavailable version
        with pytest.raises(FailedPrecondition):
            manager.set_labels("m", {"stable": 3}, allow_unavailable=True)
        manager.set_labels("m", {"stable": 1, "next": 3}, allow_unavailable=True)
        with pytest.raises(ServableNotFound, match=r"Specific\(m, 3\)"):
            manager.acquire("m", label="next")

    asyncio.run(main())
