"""modelserver.lifecycle.harness: the state table is the only way a version changes state, and load / unload walk it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import grpc
import pytest

from modelserver.lifecycle.harness import (
    REPORTED,
    TRANSITIONS,
    HarnessState,
    IllegalTransition,
    LoaderHarness,
)
from modelserver.lifecycle.state import ManagerState
from tests.support.fakes import FakeLoaders, Script, versions

T = TypeVar("T")
S = HarnessState
PATH = versions(1)[1]


async def inline(call: Callable[[], T]) -> T:
    return call()


def harness(loaders: FakeLoaders | None = None) -> LoaderHarness:
    return LoaderHarness("m", 1, PATH, (loaders or FakeLoaders())("m", 1, PATH))


def test_every_state_has_a_row_and_a_reported_state() -> None:
    assert set(TRANSITIONS) == set(S) == set(REPORTED)
    assert {s for s in S if not TRANSITIONS[s]} == {S.ERROR, S.DISABLED}  # the only terminal states


@pytest.mark.parametrize("start", list(S))
@pytest.mark.parametrize("target", list(S))
def test_only_the_table_transitions_are_allowed(start: HarnessState, target: HarnessState) -> None:
    record = harness()
    record.harness_state = start
    if target in TRANSITIONS[start]:
        record._enter(target)
        assert record.harness_state is target
    else:
        with pytest.raises(IllegalTransition, match=f"{start.value} -> {target.value}"):
            record._enter(target)
        assert record.harness_state is start


def test_load_then_unload_walks_the_table() -> None:
    async def main() -> list[tuple[HarnessState, ManagerState]]:
        loaders = FakeLoaders({1: Script(ram_bytes=123)})
        record = harness(loaders)
        seen = [(record.harness_state, record.state)]
        assert await record.load(inline, lambda: 1000, 1000)
        assert record.ram_bytes == 123 and record.holds_ram
        seen.append((record.harness_state, record.state))
        handle = record.shared.acquire() if record.shared else None
        record.quiesce()
        seen.append((record.harness_state, record.state))
        unload = asyncio.create_task(record.unload(inline))
        await asyncio.sleep(0)  # the unload now waits for the handle
        assert record.harness_state is S.QUIESCING and not unload.done()
        assert handle is not None
        handle.release()
        await unload
        seen.append((record.harness_state, record.state))
        assert record.ram_bytes == 0 and record.shared is None and not record.holds_ram
        assert loaders.events == [("load", "m", 1), ("loaded", "m", 1), ("unload", "m", 1)]
        return seen

    assert asyncio.run(main()) == [
        (S.NEW, ManagerState.START),
        (S.READY, ManagerState.AVAILABLE),
        (S.QUIESCING, ManagerState.UNLOADING),
        (S.DISABLED, ManagerState.END),
    ]


def test_a_version_over_the_budget_is_refused_before_it_loads() -> None:
    async def main() -> LoaderHarness:
        loaders = FakeLoaders({1: Script(ram_bytes=600)})
        record = harness(loaders)
        assert not await record.load(inline, lambda: 500, 1000)
        assert loaders.events == []  # never loaded
        return record

    record = asyncio.run(main())
    assert record.harness_state is S.ERROR and record.state is ManagerState.END and record.ram_bytes == 0
    assert record.error is not None and record.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_failed_load_keeps_its_error_and_frees_its_reservation() -> None:
    async def main() -> LoaderHarness:
        record = harness(FakeLoaders({1: Script(error=MemoryError("out of memory"))}))  # type: ignore[arg-type]
        assert not await record.load(inline, lambda: 1000, 1000)
        return record

    record = asyncio.run(main())
    assert record.harness_state is S.ERROR and record.ram_bytes == 0
    assert record.error is not None and record.error.code == grpc.StatusCode.INTERNAL
    assert "MemoryError: out of memory" in record.error.message
