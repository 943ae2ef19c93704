"""gateway.rollout.repository: version folders on disk and the path rules for a version's published files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.errors import ModelFileNotFound
from gateway.rollout.repository import ModelRepository


@pytest.fixture
def repo(tmp_path: Path) -> ModelRepository:
    base = tmp_path / "models" / "fashion"
    for version in (1, 3):
        (base / str(version)).mkdir(parents=True)
        (base / str(version) / "model_card.json").write_text("{}")
    (base / ".tmp-4-ab12").mkdir()
    (base / "notes").mkdir()
    (tmp_path / "secret.txt").write_text("not a model file")
    return ModelRepository({"fashion": str(base), "gone": str(tmp_path / "nowhere")})


def test_versions_are_the_numeric_folders_only(repo: ModelRepository) -> None:
    assert repo.versions("fashion") == [1, 3]
    assert repo.versions("gone") is None and repo.versions("unknown") is None


def test_version_file_of_a_published_version(repo: ModelRepository, tmp_path: Path) -> None:
    path = repo.version_file("fashion", 3, "model_card.json")
    assert path == (tmp_path / "models" / "fashion" / "3" / "model_card.json").resolve()


@pytest.mark.parametrize(
    ("name", "version", "filename", "why"),
    [
        ("fashion", 2, "model_card.json", "no such file"),  # missing version
        ("fashion", 1, "training_curves.png", "no such file"),  # missing file
        ("fashion", -1, "model_card.json", "non-negative"),
        ("unknown", 1, "model_card.json", "not readable from the gateway"),
        ("gone", 1, "model_card.json", "not readable from the gateway"),
        ("fashion", 1, "../../../secret.txt", "no such file"),  # traversal in a file name
    ],
)
def test_version_file_refusals(
    repo: ModelRepository, name: str, version: int, filename: str, why: str
) -> None:
    with pytest.raises(ModelFileNotFound, match=why) as caught:
        repo.version_file(name, version, filename)
    assert caught.value.status == 404


def test_symlink_out_of_the_base_path_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "7"
    outside.mkdir(parents=True)
    (outside / "model_card.json").write_text("{}")
    os.symlink(outside, tmp_path / "models" / "fashion" / "7")
    os.symlink(tmp_path / "secret.txt", tmp_path / "models" / "fashion" / "1" / "training_curves.png")
    with pytest.raises(ModelFileNotFound):
        repo.version_file("fashion", 7, "model_card.json")
    with pytest.raises(ModelFileNotFound):
        repo.version_file("fashion", 1, "training_curves.png")


def test_relative_base_path_is_relative_to_the_working_directory(
    repo: ModelRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = ModelRepository({"fashion": "models/fashion"})
    assert relative.versions("fashion") == [1, 3]
    assert relative.version_file("fashion", 1, "model_card.json").is_file()
