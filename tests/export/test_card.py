"""model_card.json and training_curves.png: the fields docs/architecture.md promises."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from export import signatures
from export.data import FASHION_FILES, HOUSING_FILE, SMS_FILE

FILES = {
    "fashion": {spec.sha256 for spec in FASHION_FILES.values()},
    "text": {SMS_FILE.sha256},
    "housing": {HOUSING_FILE.sha256},
}
METRICS = {
    "fashion": {"accuracy", "baseline_accuracy"},
    "text": {"accuracy", "baseline_accuracy", "spam_precision", "spam_recall"},
    "housing": {"rmse", "baseline_rmse", "rmse_reduction"},
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_card_has_every_documented_field(
    versions: dict[str, Path], cards: dict[str, dict[str, Any]], name: str
) -> None:
    card = cards[name]
    assert {
        "name",
        "version",
        "created",
        "task",
        "data",
        "metrics",
        "parameters",
        "sizes",
        "signatures",
        "contract",
        "training",
        "curves",
    } <= set(card)
    assert card["name"] == name and card["version"] == 1
    assert dt.datetime.fromisoformat(card["created"]).tzinfo is not None
    assert card["task"] == card["contract"]["task"]
    assert {f["sha256"] for f in card["data"]["files"]} == FILES[name]
    assert card["data"]["source"]
    assert all(card["data"]["splits"][split] > 0 for split in ("train", "validation", "test"))
    assert METRICS[name] <= set(card["metrics"])
    assert all(isinstance(card["metrics"][key], float) for key in METRICS[name])
    assert card["parameters"] > 1000
    assert card["signatures"] == signatures.describe(versions[name])
    assert card["training"]["epochs"] == 1 and card["training"]["seconds"] >= 0
    assert all(len(values) == 1 for values in card["training"]["history"].values())


@pytest.mark.parametrize("name", sorted(FILES))
def test_card_sizes_match_the_files(
    versions: dict[str, Path], cards: dict[str, dict[str, Any]], name: str
) -> None:
    sizes = cards[name]["sizes"]
    version = versions[name]
    assert sizes["saved_model_pb"] == (version / "saved_model.pb").stat().st_size
    assert sizes["frozen_graph"] == (version / "frozen_graph.pb").stat().st_size
    assert sizes["variables"] == sum(p.stat().st_size for p in (version / "variables").iterdir())
    assert sizes["saved_model_pb"] + sizes["variables"] + sizes["frozen_graph"] < sizes["version_total"]
    # float32 weights only: no optimizer slots (Adam would triple this)
    assert sizes["variables"] < 1.5 * 4 * cards[name]["parameters"] + 16_384


@pytest.mark.parametrize("name", sorted(FILES))
def test_training_curves_are_a_png(
    versions: dict[str, Path], cards: dict[str, dict[str, Any]], name: str
) -> None:
    assert cards[name]["curves"] == ["training_curves.png"]
    assert (versions[name] / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
