"""Atomic publishing: staging, no-overwrite rename, ``auto`` numbering, and interrupted exports."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import export.api
from devtools.waiting import wait_until
from export.errors import InvalidVersion, VersionExists
from export.publish import existing_versions, parse_version, resolve_version, staging

REPO_ROOT = Path(__file__).resolve().parents[2]


def _visible(model_root: Path) -> list[str]:
    return sorted(p.name for p in model_root.iterdir()) if model_root.exists() else []


def _digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(directory).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", None), ("AUTO", None), (" auto ", None), ("1", 1), ("42", 42), (7, 7)],
)
def test_parse_version_accepts_auto_and_positive_integers(value: str | int, expected: int | None) -> None:
    assert parse_version(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", "latest", 0, -3, True])
def test_parse_version_rejects_everything_else(value: str | int) -> None:
    with pytest.raises(InvalidVersion, match="auto"):
        parse_version(value)


@pytest.mark.parametrize(
    ("present", "expected"),
    [([], 1), (["1"], 2), (["1", "3"], 4), (["2", ".tmp-9-abc", "notes"], 3)],
)
def test_auto_takes_the_next_number_after_the_highest(
    tmp_path: Path, present: list[str], expected: int
) -> None:
    for name in present:
        (tmp_path / "m" / name).mkdir(parents=True)
    assert resolve_version(tmp_path / "m", "auto") == expected


def test_explicit_existing_version_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "m" / "3").mkdir(parents=True)
    with pytest.raises(VersionExists, match="already exists"):
        resolve_version(tmp_path / "m", "3")


def test_staging_is_hidden_then_renamed_into_place(tmp_path: Path) -> None:
    with staging(tmp_path, "m", "auto") as stage:
        assert stage.path.parent == tmp_path / "m"
        assert stage.path.name.startswith(".tmp-1-") and not stage.path.name.isdigit()
        assert existing_versions(tmp_path / "m") == []
        (stage.path / "saved_model.pb").write_bytes(b"x")
        published = stage.commit()
    assert published == tmp_path / "m" / "1"
    assert _visible(tmp_path / "m") == ["1"]
    assert (published / "saved_model.pb").read_bytes() == b"x"
    assert published.stat().st_mode & 0o777 == 0o755


def test_exception_inside_staging_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="injected"), staging(tmp_path, "m", "auto") as stage:  # noqa: PT012
        (stage.path / "saved_model.pb").write_bytes(b"x")
        raise RuntimeError("injected")
    assert _visible(tmp_path / "m") == []


@pytest.mark.parametrize("target_content", [None, "file"])
def test_commit_never_replaces_a_version_that_appeared_meanwhile(
    tmp_path: Path, target_content: str | None
) -> None:
    with pytest.raises(VersionExists), staging(tmp_path, "m", "1") as stage:  # noqa: PT012 - raised at exit
        (stage.path / "saved_model.pb").write_bytes(b"new")
        stage.target.mkdir()  # a concurrent export won the race (an empty directory counts too)
        if target_content:
            (stage.target / "saved_model.pb").write_bytes(b"old")
        stage.commit()
    assert _visible(tmp_path / "m") == ["1"]
    expected = ["saved_model.pb"] if target_content else []
    assert sorted(p.name for p in (tmp_path / "m" / "1").iterdir()) == expected
    if target_content:
        assert (tmp_path / "m" / "1" / "saved_model.pb").read_bytes() == b"old"


def test_export_model_never_overwrites_a_published_version(
    model_repo: Path, tmp_path: Path, data_dir: Path
) -> None:
    shutil.copytree(model_repo / "housing" / "1", tmp_path / "housing" / "1")
    before = _digest(tmp_path / "housing" / "1")
    with pytest.raises(VersionExists, match="never overwritten"):
        export.api.export_model("housing", tmp_path, version=1, epochs=1, limit=200, data_dir=data_dir)
    assert _digest(tmp_path / "housing" / "1") == before
    assert _visible(tmp_path / "housing") == ["1"]


@pytest.mark.trains
def test_failure_after_staging_publishes_nothing(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_card(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure while writing the card")

    monkeypatch.setattr(export.api.card, "write", broken_card)
    with pytest.raises(RuntimeError, match="injected"):
        export.api.export_model("housing", tmp_path, epochs=1, limit=200, data_dir=data_dir)
    assert _visible(tmp_path / "housing") == []


@pytest.mark.trains
def test_killed_export_leaves_no_visible_version(tmp_path: Path, data_dir: Path) -> None:
    # Many epochs on a small slice: the process is surely still training when the staging directory appears.
    command = [
        sys.executable,
        "-m",
        "export",
        "housing",
        "--epochs",
        "500",
        "--limit",
        "400",
        "--models-dir",
        str(tmp_path),
        "--data-dir",
        str(data_dir),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def staged() -> bool:
            assert process.poll() is None, "the export ended before it could be interrupted"
            return bool(list((tmp_path / "housing").glob(".tmp-*")))

        wait_until(staged, "the export's staging directory", timeout=120, interval=0.2)
        assert list((tmp_path / "housing").glob(".tmp-*")), "no staging directory appeared"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert existing_versions(tmp_path / "housing") == []
    assert all(name.startswith(".tmp-") for name in _visible(tmp_path / "housing"))
    assert resolve_version(tmp_path / "housing", "auto") == 1
