"""modelserver.lifecycle.core: ServerCore wires a source to the manager - config applied, removed models unloaded,
labels set last, a poll racing a removal ignored (fake source and loaders: no files, no TensorFlow)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devtools.waiting import async_wait_until
from modelserver.errors import FailedPrecondition
from modelserver.lifecycle.core import ServerCore
from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.model_config import ModelEntry
from modelserver.lifecycle.source import AspiredCallback
from modelserver.lifecycle.version_policy import LatestVersions
from modelserver.metrics import Metrics
from tests.support.fakes import FakeLoaders, FakeSource, versions


def entry(name: str, labels: dict[str, int] | None = None) -> ModelEntry:
    return ModelEntry(name, Path(f"/models/{name}"), LatestVersions(), labels or {})


def make_core() -> tuple[ServerCore, FakeSource, FakeLoaders]:
    loaders = FakeLoaders()
    manager = AspiredVersionsManager(loaders, ram_budget_bytes=10_000, metrics=Metrics())
    sources: list[FakeSource] = []

    def source(callback: AspiredCallback) -> FakeSource:
        sources.append(FakeSource(callback))
        return sources[-1]

    core = ServerCore(manager, file_system_poll_wait_seconds=0, source=source)
    return core, sources[0], loaders


def test_config_is_applied_then_a_removed_model_is_unloaded() -> None:
    async def main() -> None:
        core, source, loaders = make_core()
        source.aspire("a", versions(1, name="a"))
        source.aspire("b", versions(3, name="b"))
        await core.apply_config({"a": entry("a", {"stable": 1}), "b": entry("b")})
        assert core.manager.available_versions("a") == [1] and core.manager.available_versions("b") == [3]
        assert core.manager.labels("a") == {"stable": 1}
        await core.apply_config({"b": entry("b")})
        await core.manager.wait_unloads()
        assert core.manager.available_versions("a") == [] and core.manager.labels("a") == {}
        assert ("unload", "a", 1) in loaders.events
        await core._aspired("a", versions(1, name="a"))  # a poll racing the removal resurrects nothing
        assert core.manager.available_versions("a") == []
        await core.stop()

    asyncio.run(main())


def test_a_label_on_a_version_that_is_not_served_is_refused() -> None:
    async def main() -> None:
        core, source, _ = make_core()
        source.aspire("a", versions(1, name="a"))
        with pytest.raises(FailedPrecondition, match="not currently available"):
            await core.apply_config({"a": entry("a", {"canary": 2})})
        await core.stop()

    asyncio.run(main())


def test_start_and_reloads_load_models_concurrently_with_two_load_threads(tmp_path: Path) -> None:
    """The real FileSystemSource: with ``num_load_threads=2`` a config's models are reconciled at once, at
    start and on a reload (HandleReloadConfigRequest and config-file polling call ``apply_config``)."""
    for name in ("a", "b", "c", "d"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "saved_model.pb").write_bytes(b"x")

    def entries(*names: str) -> dict[str, ModelEntry]:
        return {n: ModelEntry(n, tmp_path / n, LatestVersions()) for n in names}

    async def main() -> None:
        loaders = FakeLoaders()
        manager = AspiredVersionsManager(
            loaders, ram_budget_bytes=10_000, metrics=Metrics(), num_load_threads=2
        )
        core = ServerCore(manager, file_system_poll_wait_seconds=0)
        for names in (("a", "b"), ("a", "b", "c", "d")):
            gate = loaders.gate(1)  # every model's version 1 blocks until both new ones are loading
            apply = asyncio.create_task(core.apply_config(entries(*names)))
            new = names[-2:]
            await async_wait_until(
                lambda new=new: all(loaders.started(1, n) for n in new),
                f"{' and '.join(new)} loading at once",
            )
            gate.set()
            await apply
            assert all(manager.available_versions(n) == [1] for n in names)
        await core.stop()

    asyncio.run(main())


def test_a_reload_whose_caller_is_cancelled_mid_load_is_applied_to_the_end() -> None:
    """A ReloadConfig whose client deadline passes while a version loads (its gRPC task cancelled): the
    version still becomes AVAILABLE, labels are applied, and a label error after the caller left is logged,
    not lost. Before the fix the version stayed LOADING for ever and no later reconcile touched it."""

    async def main() -> None:
        core, source, loaders = make_core()
        source.aspire("a", versions(1, name="a"))
        gate = loaders.gate(1)
        call = asyncio.create_task(core.apply_config({"a": entry("a", {"stable": 1})}))
        await async_wait_until(lambda: loaders.started(1, "a"), "version 1's load to start")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        gate.set()
        await async_wait_until(lambda: core.manager.available_versions("a") == [1], "version 1 AVAILABLE")
        await async_wait_until(lambda: core.manager.labels("a") == {"stable": 1}, "the label applied")
        await core.apply_config({"a": entry("a")})  # the next reload is not blocked by the abandoned one
        assert core.manager.labels("a") == {}
        await core.stop()

    asyncio.run(main())
