"""modelserver.lifecycle.manager: both aspired-version policies, failed loads, RAM budget, labels, handles, load and
unload threads (fake loaders: no TensorFlow; waits are conditions, never sleeps)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

from devtools.procs import REPO_ROOT
from devtools.waiting import async_wait_until
from modelserver.errors import (
    FailedPrecondition,
    NotFound,
    ServableNotFound,
    ServingError,
    Unavailable,
    UnknownVersionLabel,
)
from modelserver.lifecycle.aspired_version_policy import POLICIES, AvailabilityPreserving, ResourcePreserving
from modelserver.lifecycle.harness import HarnessState
from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.state import ManagerState
from modelserver.metrics import Metrics
from tests.support.fakes import FakeLoaders, Script, versions

TWO_MODELS = {"a": versions(1, name="a"), "b": versions(2, name="b")}  # own versions: own scripts


def make_manager(
    loaders: FakeLoaders | None = None,
    budget: int = 1000,
    policy: str = "availability_preserving",
    load_threads: int = 0,
    unload_threads: int = 0,
) -> AspiredVersionsManager:
    return AspiredVersionsManager(
        loaders or FakeLoaders(),
        ram_budget_bytes=budget,
        policy=POLICIES[policy](),
        metrics=Metrics(),
        num_load_threads=load_threads,
        num_unload_threads=unload_threads,
    )


def states(manager: AspiredVersionsManager, name: str = "m") -> dict[int, str]:
    return {r.version: r.state.name for r in manager.status(name)}


def test_latest_specific_and_missing_versions() -> None:
    async def main() -> None:
        manager = make_manager()
        await manager.reconcile("m", versions(1, 2))
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
        loaders = FakeLoaders()
        gate = loaders.gate(2)
        manager = make_manager(loaders)
        await manager.reconcile("m", versions(1))
        swap = asyncio.create_task(manager.reconcile("m", versions(2)))
        await async_wait_until(lambda: loaders.started(2), "version 2's load to start")
        assert states(manager) == {2: "LOADING", 1: "AVAILABLE"}
        with manager.acquire("m") as handle:  # still served by v1 while v2 loads
            assert handle.servable.version == 1
        gate.set()
        await swap
        await manager.wait_unloads()
        assert states(manager) == {2: "AVAILABLE", 1: "END"}
        with manager.acquire("m") as handle:
            assert handle.servable.version == 2
        assert loaders.events.index(("loaded", "m", 2)) < loaders.events.index(("unload", "m", 1))

    asyncio.run(main())


def test_failed_load_is_reported_and_never_replaces_the_serving_version() -> None:
    async def main() -> None:
        broken = ServingError("corrupt saved_model.pb", code=grpc.StatusCode.DATA_LOSS)
        manager = make_manager(FakeLoaders({2: Script(error=broken)}))
        await manager.reconcile("m", versions(1))
        await manager.reconcile("m", versions(2))  # latest 1 now aspires only the broken v2
        await manager.wait_unloads()
        records = {r.version: r for r in manager.status("m")}
        assert records[1].state == ManagerState.AVAILABLE
        assert records[2].state == ManagerState.END and records[2].harness_state is HarnessState.ERROR
        assert records[2].error is not None and "corrupt" in records[2].error.message
        with manager.acquire("m") as handle:
            assert handle.servable.version == 1
        await manager.reconcile("m", versions(2))  # an unchanged failed version is not retried
        assert manager.status("m", 2)[0].error is not None

    asyncio.run(main())


def test_a_loader_failing_with_any_exception_is_internal() -> None:
    async def main() -> None:
        manager = make_manager(FakeLoaders({1: Script(error=RuntimeError("boom"))}))  # type: ignore[arg-type]
        await manager.reconcile("m", versions(1))
        error = manager.status("m", 1)[0].error
        assert error is not None and error.code == grpc.StatusCode.INTERNAL and "boom" in error.message

    asyncio.run(main())


@pytest.mark.parametrize(
    ("policy", "serving", "v2_state", "order"),
    [
        # availability preserving: v2 does not fit beside v1, so v1 keeps serving and v2 is refused
        ("availability_preserving", 1, "END", [("load", "m", 1), ("loaded", "m", 1)]),
        # resource preserving: v1 is unloaded first, then v2 fits
        (
            "resource_preserving",
            2,
            "AVAILABLE",
            [("load", "m", 1), ("loaded", "m", 1), ("unload", "m", 1), ("load", "m", 2), ("loaded", "m", 2)],
        ),
    ],
)
def test_tight_ram_budget_per_policy(
    policy: str, serving: int, v2_state: str, order: list[tuple[str, str, int]]
) -> None:
    async def main() -> None:
        loaders = FakeLoaders({1: Script(ram_bytes=600), 2: Script(ram_bytes=600)})
        manager = make_manager(loaders, budget=1000, policy=policy)
        await manager.reconcile("m", versions(1))
        await manager.reconcile("m", versions(2))
        await manager.wait_unloads()
        assert manager.available_versions("m") == [serving]
        assert states(manager)[2] == v2_state
        assert loaders.events == order
        if v2_state == "END":
            error = manager.status("m", 2)[0].error
            assert error is not None and error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "Insufficient resources" in error.message

    asyncio.run(main())


def test_resource_preserving_waits_for_the_old_version_to_drain() -> None:
    async def main() -> None:
        loaders = FakeLoaders()
        manager = make_manager(loaders, policy="resource_preserving")
        await manager.reconcile("m", versions(1))
        handle = manager.acquire("m")
        swap = asyncio.create_task(manager.reconcile("m", versions(2)))
        await async_wait_until(lambda: states(manager)[1] == "UNLOADING", "version 1 to be retired")
        with pytest.raises(Unavailable, match="no version of model m is available"):
            manager.acquire("m")  # the price of unloading first: a gap without a version
        assert not loaders.started(2)  # nothing loads while v1 still holds its resources
        assert handle.servable.version == 1  # the request in flight finishes on v1
        handle.release()
        await swap
        assert states(manager) == {2: "AVAILABLE", 1: "END"}

    asyncio.run(main())


def test_request_started_on_old_version_finishes_on_it() -> None:
    async def main() -> None:
        manager = make_manager()
        await manager.reconcile("m", versions(1))
        handle = manager.acquire("m")
        await manager.reconcile("m", versions(2))
        assert states(manager)[1] == "UNLOADING"  # retired at once, but a request still holds it
        assert manager.status("m", 1)[0].harness_state is HarnessState.QUIESCING
        assert handle.servable.version == 1
        with pytest.raises(ServableNotFound):  # no new requests reach a retiring version
            manager.acquire("m", 1)
        handle.release()
        await manager.wait_unloads()
        assert states(manager) == {2: "AVAILABLE", 1: "END"}
        assert manager.status("m", 1)[0].harness_state is HarnessState.DISABLED

    asyncio.run(main())


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_removed_model_is_unloaded_and_nothing_available_is_unavailable(policy: str) -> None:
    async def main() -> None:
        manager = make_manager(policy=policy)
        await manager.reconcile("m", versions(1))
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


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_unloaded_version_aspired_again_is_loaded_again(policy: str) -> None:
    async def main() -> None:
        loaders = FakeLoaders()
        manager = make_manager(loaders, policy=policy)
        await manager.reconcile("m", versions(1))
        await manager.reconcile("m", versions(2))
        await manager.wait_unloads()
        await manager.reconcile("m", versions(1))  # a rollback: v1 back, v2 out
        await manager.wait_unloads()
        assert states(manager) == {2: "END", 1: "AVAILABLE"}
        assert [e for e in loaders.events if e[0] == "loaded"] == [("loaded", "m", v) for v in (1, 2, 1)]

    asyncio.run(main())


def test_labels_follow_tf_serving_rules() -> None:
    async def main() -> None:
        manager = make_manager()
        await manager.reconcile("m", versions(1, 2))  # reconcile takes what it is given
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


def test_default_policy_is_availability_preserving() -> None:
    manager = AspiredVersionsManager(FakeLoaders(), ram_budget_bytes=1, metrics=Metrics())
    assert isinstance(manager._policy, AvailabilityPreserving)
    assert POLICIES["resource_preserving"] is ResourcePreserving


def test_the_lifecycle_never_imports_tensorflow() -> None:
    code = (
        "import sys, modelserver.lifecycle.manager, modelserver.lifecycle.harness, modelserver.lifecycle.aspired_version_policy, modelserver.lifecycle.core; "
        "sys.exit('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False).returncode == 0


def reconcile_all(
    manager: AspiredVersionsManager, models: dict[str, dict[int, Path]]
) -> asyncio.Future[list[None]]:
    """Reconcile several models at once, as the source does with more than one load thread."""
    return asyncio.gather(*(manager.reconcile(name, aspired) for name, aspired in models.items()))


def test_two_load_threads_load_different_models_at_once() -> None:
    async def main() -> None:
        loaders = FakeLoaders()
        gates = [loaders.gate(1), loaders.gate(2)]
        manager = make_manager(loaders, load_threads=2)
        assert manager.load_threads == 2
        both = reconcile_all(manager, TWO_MODELS)
        # both loads block until the test opens them: seeing both started proves they overlap (a serial
        # manager never starts b's load while a's blocks, and this wait fails at its hang guard)
        await async_wait_until(
            lambda: loaders.started(1, "a") and loaders.started(2, "b"), "both loads running at once"
        )
        assert states(manager, "a") == {1: "LOADING"} and states(manager, "b") == {2: "LOADING"}
        assert loaders.threads[("load", "a", 1)] != loaders.threads[("load", "b", 2)]
        for gate in gates:
            gate.set()
        await both
        assert manager.available_versions("a") == [1] and manager.available_versions("b") == [2]
        await manager.shutdown()

    asyncio.run(main())


@pytest.mark.parametrize("load_threads", [0, 1])
def test_zero_or_one_load_thread_loads_one_version_at_a_time(load_threads: int) -> None:
    async def main() -> None:
        loaders = FakeLoaders()
        gate = loaders.gate(1)
        manager = make_manager(loaders, load_threads=load_threads)
        assert manager.load_threads == 1
        both = reconcile_all(manager, TWO_MODELS)
        # b passed its budget check and handed its load to the pool while a's load blocks ...
        await async_wait_until(
            lambda: loaders.started(1, "a") and states(manager, "b") == {2: "LOADING"},
            "a loading and b's load queued",
        )
        gate.set()
        await both
        # ... yet it ran after a's, in the same thread: a pool of more threads would have run it in another
        assert loaders.events == [("load", "a", 1), ("loaded", "a", 1), ("load", "b", 2), ("loaded", "b", 2)]
        assert loaders.threads[("load", "a", 1)] == loaders.threads[("load", "b", 2)]
        await manager.shutdown()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("load_threads", "unload_threads", "unload_in_load_thread"),
    [
        (0, 0, True),  # the default: one manager thread does everything, serially
        (1, 0, False),  # a load pool; unloads stay in the manager thread
        (2, 0, False),
        (0, 1, False),  # an unload pool; loads stay in the manager thread
        (2, 2, False),
    ],
)
def test_where_loads_and_unloads_run(
    load_threads: int, unload_threads: int, unload_in_load_thread: bool
) -> None:
    async def main() -> None:
        loaders = FakeLoaders()
        manager = make_manager(loaders, load_threads=load_threads, unload_threads=unload_threads)
        await manager.reconcile("m", versions(1))
        await manager.reconcile("m", versions(2))  # v2 loads, then v1 unloads: the order does not change
        await manager.wait_unloads()
        assert loaders.events == [("load", "m", 1), ("loaded", "m", 1), ("load", "m", 2), ("loaded", "m", 2),
                                  ("unload", "m", 1)]  # fmt: skip
        threads = loaders.threads
        assert (threads[("unload", "m", 1)] == threads[("load", "m", 2)]) is unload_in_load_thread
        assert threading.get_ident() not in threads.values()  # never on the event loop
        await manager.shutdown()

    asyncio.run(main())


def test_negative_thread_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="num_load_threads=-1"):
        make_manager(load_threads=-1)
    with pytest.raises(ValueError, match="num_unload_threads=-2"):
        make_manager(unload_threads=-2)


def test_concurrent_loads_that_fit_only_one_at_a_time_leave_one_ready_and_one_refused() -> None:
    async def main() -> None:
        barrier = threading.Barrier(2)  # both estimates run at once: both budget checks come together
        loaders = FakeLoaders({v: Script(ram_bytes=600, estimate_barrier=barrier) for v in (1, 2)})
        gates = [loaders.gate(1), loaders.gate(2)]  # whichever passes keeps LOADING (its RAM reserved)
        manager = make_manager(loaders, budget=1000, load_threads=2)
        both = reconcile_all(manager, TWO_MODELS)
        records = lambda: [manager.status(name)[0] for name in ("a", "b")]  # noqa: E731
        await async_wait_until(lambda: loaders.made and len(loaders.made) == 2, "both versions seen")
        await async_wait_until(
            lambda: all(r.state is not ManagerState.START for r in records()), "both budget checks done"
        )
        # each fits alone (600 of 1000), not both: exactly one may be loading while the other is refused
        assert sorted(r.harness_state.name for r in records()) == ["ERROR", "LOADING"]
        refused = next(r for r in records() if r.harness_state is HarnessState.ERROR)
        assert refused.error is not None and refused.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert manager._ram_in_use() == 600
        for gate in gates:
            gate.set()
        await both
        assert sorted(r.state.name for r in records()) == ["AVAILABLE", "END"]
        assert [e[0] for e in loaders.events] == ["load", "loaded"]  # the refused version never loaded
        await manager.shutdown()

    asyncio.run(main())


def test_a_cancelled_reconcile_never_leaves_a_version_loading() -> None:
    async def main() -> None:
        loaders = FakeLoaders()
        gate = loaders.gate(2)
        manager = make_manager(loaders)
        await manager.reconcile("m", versions(1))
        swap = asyncio.create_task(manager.reconcile("m", versions(2)))
        await async_wait_until(lambda: loaders.started(2), "version 2's load to start")
        swap.cancel()  # e.g. the ReloadConfig call that asked for it hit its deadline
        with pytest.raises(asyncio.CancelledError):
            await swap
        gate.set()
        await async_wait_until(lambda: states(manager).get(2) == "AVAILABLE", "version 2 AVAILABLE")
        await async_wait_until(lambda: states(manager).get(1) == "END", "version 1 unloaded")
        with manager.acquire("m") as handle:
            assert handle.servable.version == 2

    asyncio.run(main())
