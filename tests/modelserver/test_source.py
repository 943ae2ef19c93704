"""modelserver.source: numeric, complete version directories and the aspired versions they give."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from modelserver.policy import AllVersions, LatestVersions, SpecificVersions
from modelserver.source import FileSystemSource, ModelSource, aspired_versions, scan_versions


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
