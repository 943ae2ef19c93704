"""modelserver.lifecycle.source: numeric, complete version directories and the aspired versions they give; polls that
reconcile models one after another or, with several load threads, all at once."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from devtools.waiting import async_wait_until
from modelserver.lifecycle import source
from modelserver.lifecycle.core import ServerCore
from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.model_config import ModelEntry
from modelserver.lifecycle.source import FileSystemSource, ModelSource, aspired_versions, scan_versions
from modelserver.lifecycle.version_policy import AllVersions, LatestVersions, SpecificVersions
from modelserver.metrics import Metrics
from tests.support.fakes import FakeLoaders


def _version(base: Path, name: str, complete: bool = True) -> Path:
    path = base / name
    (path / "variables").mkdir(parents=True)
    if complete:
        (path / "saved_model.pb").write_bytes(b"x")
    return path


def test_scan_versions_keeps_only_complete_numeric_dirs(tmp_path: Path) -> None:
    _version(tmp_path, "1")
    _version(tmp_path, "00012")
    _version(tmp_path, "3", complete=False)  # still being copied in
    _version(tmp_path, ".tmp-4-abcd")
    _version(tmp_path, "v5")
    _version(tmp_path, "0.6")
    (tmp_path / "7").write_text("a file, not a folder")
    assert scan_versions(tmp_path) == {1: tmp_path / "1", 12: tmp_path / "00012"}


def test_half_written_version_appears_once_complete(tmp_path: Path) -> None:
    path = _version(tmp_path, "2", complete=False)
    assert scan_versions(tmp_path) == {}
    (path / "saved_model.pb").write_bytes(b"x")
    assert scan_versions(tmp_path) == {2: path}


def test_aspired_versions_applies_policy(tmp_path: Path) -> None:
    for v in ("1", "2", "3"):
        _version(tmp_path, v)
    assert list(aspired_versions(ModelSource("m", tmp_path, LatestVersions(2))) or {}) == [2, 3]
    assert list(aspired_versions(ModelSource("m", tmp_path, AllVersions())) or {}) == [1, 2, 3]
    assert list(aspired_versions(ModelSource("m", tmp_path, SpecificVersions(frozenset({1})))) or {}) == [1]


def test_missing_base_path_reports_nothing(tmp_path: Path) -> None:
    assert aspired_versions(ModelSource("m", tmp_path / "absent")) is None


def test_poll_once_calls_back_per_model(tmp_path: Path) -> None:
    _version(tmp_path / "a", "1")
    _version(tmp_path / "a", "2")
    (tmp_path / "b").mkdir()
    seen: dict[str, list[int]] = {}

    async def callback(name: str, aspired: Mapping[int, Path]) -> None:
        seen[name] = list(aspired)

    async def main() -> None:
        source = FileSystemSource(callback, poll_wait_seconds=0)
        source.set_models(
            {
                "a": ModelSource("a", tmp_path / "a"),
                "b": ModelSource("b", tmp_path / "b"),
                "gone": ModelSource("gone", tmp_path / "gone"),
            }
        )
        await source.poll_once()

    asyncio.run(main())
    assert seen == {"a": [2], "b": []}  # no callback for a base path that does not exist


@pytest.mark.parametrize("concurrent", [False, True])
def test_poll_once_reconciles_models_one_after_another_or_all_at_once(
    tmp_path: Path, concurrent: bool
) -> None:
    for name in ("a", "b", "c"):
        _version(tmp_path / name, "1")
    entered: list[str] = []
    release = asyncio.Event()

    async def callback(name: str, aspired: Mapping[int, Path]) -> None:
        entered.append(name)
        if name == "a":  # a's reconcile blocks until the others have started, or the test releases it
            await release.wait()

    async def main() -> None:
        source = FileSystemSource(callback, poll_wait_seconds=0, concurrent=concurrent)
        source.set_models({name: ModelSource(name, tmp_path / name) for name in ("a", "b", "c")})
        poll = asyncio.create_task(source.poll_once())
        if concurrent:  # the others start while a's blocks (serially this wait fails at its hang guard)
            await async_wait_until(lambda: sorted(entered) == ["a", "b", "c"], "every model's callback")
        else:
            await async_wait_until(lambda: entered == ["a"], "a's callback")
        assert not poll.done()
        release.set()
        await poll

    asyncio.run(main())
    # serially in the config's order; concurrently in whichever order their scans finish
    assert (sorted(entered) if concurrent else entered) == ["a", "b", "c"]


def test_concurrent_poll_finishes_every_model_then_raises_the_first_error(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _version(tmp_path / name, "1")
    finished: list[str] = []

    async def callback(name: str, aspired: Mapping[int, Path]) -> None:
        if name == "a":
            raise RuntimeError("a failed")
        await asyncio.sleep(0)  # b is still running when a's error comes back
        finished.append(name)

    async def main() -> None:
        source = FileSystemSource(callback, poll_wait_seconds=0, concurrent=True)
        source.set_models({name: ModelSource(name, tmp_path / name) for name in ("a", "b")})
        with pytest.raises(RuntimeError, match="a failed"):
            await source.poll_once()
        assert finished == ["b"]

    asyncio.run(main())


def test_a_base_path_that_cannot_be_listed_raises_not_no_versions(tmp_path: Path) -> None:
    def scandir(path: object) -> object:
        raise OSError(errno.EMFILE, "Too many open files")

    _version(tmp_path, "1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source.os, "scandir", scandir)
        with pytest.raises(OSError, match="Too many open files"):
            scan_versions(tmp_path)
        with pytest.raises(OSError, match="Too many open files"):
            aspired_versions(ModelSource("m", tmp_path))


@pytest.mark.parametrize("code", [errno.EMFILE, errno.EIO, errno.EACCES])
def test_a_scan_error_keeps_the_served_version_available_and_is_counted_and_logged_once(
    tmp_path: Path, code: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient OS error listing the base path (EMFILE in a connection flood, EIO, EACCES) aspires
    nothing new: the manager keeps serving what it serves, the next polls retry, each failure is counted
    and one line is logged (no traceback), one more when the scan works again."""
    _version(tmp_path / "m", "1")
    failing = {"on": False}
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if failing["on"]:
            raise OSError(code, os.strerror(code))
        return real_scandir(path)

    monkeypatch.setattr(source.os, "scandir", scandir)

    async def main() -> None:
        metrics = Metrics()
        manager = AspiredVersionsManager(FakeLoaders(), ram_budget_bytes=10_000, metrics=metrics)
        core = ServerCore(
            manager,
            file_system_poll_wait_seconds=0,
            source=lambda callback: FileSystemSource(callback, 0, metrics=metrics),
        )
        await core.apply_config({"m": ModelEntry("m", tmp_path / "m", LatestVersions())})
        assert manager.available_versions("m") == [1]
        failing["on"] = True
        for _ in range(5):
            await core.source.poll_once()
        await manager.wait_unloads()
        assert manager.available_versions("m") == [1]
        name = errno.errorcode[code]
        assert (
            metrics.registry.get_sample_value(
                "modelserver_model_scan_errors_total", {"model": "m", "error": name}
            )
            == 5
        )
        failing["on"] = False
        _version(tmp_path / "m", "2")
        await core.source.poll_once()  # the retry picks up what changed meanwhile
        assert manager.available_versions("m") == [2]
        await core.stop()

    with caplog.at_level(logging.WARNING, logger="modelserver.source"):
        asyncio.run(main())
    lines = [r for r in caplog.records if r.name == "modelserver.source"]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.WARNING]
    assert "keeping the versions it serves" in lines[0].getMessage()
    assert "scanned again" in lines[1].getMessage()
    assert all(r.exc_info is None for r in lines)


def test_an_empty_base_path_still_unloads(tmp_path: Path) -> None:
    """Only a listing that works and holds no complete version means "no versions" (TF Serving's rule)."""
    path = _version(tmp_path / "m", "1")

    async def main() -> None:
        manager = AspiredVersionsManager(FakeLoaders(), ram_budget_bytes=10_000, metrics=Metrics())
        core = ServerCore(manager, file_system_poll_wait_seconds=0)
        await core.apply_config({"m": ModelEntry("m", tmp_path / "m", LatestVersions())})
        assert manager.available_versions("m") == [1]
        shutil.rmtree(path)
        await core.source.poll_once()
        await manager.wait_unloads()
        assert manager.available_versions("m") == []
        await core.stop()

    asyncio.run(main())
