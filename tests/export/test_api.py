"""``export.api.export_model``: the programmatic entry point other parts' tests call."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.api import MODELS, export_model
from export.errors import UnknownModel


def test_models_are_the_three_documented_ones() -> None:
    assert set(MODELS) == {"fashion", "text", "housing"}


def test_unknown_model_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="known models: fashion, housing, text"):
        export_model("resnet", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_model_repo_holds_version_one_of_every_model_and_an_absolute_config(model_repo: Path) -> None:
    for name in MODELS:
        assert (model_repo / name / "1" / "saved_model.pb").is_file()
        assert not list((model_repo / name).glob(".tmp-*"))
    config = (model_repo / "models.config").read_text()
    for name in MODELS:
        assert f'base_path: "{(model_repo / name).resolve()}"' in config
    assert config.count("config {") == 3 and 'model_platform: "tensorflow"' in config
