"""assets.extra/reference_profile.json (export.profile): every built-in model's version carries a profile of
its training sample and of the model's outputs on it, with the features the model server's drift monitor
derives from served traffic (modelserver.observe.profile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.housing import FEATURES
from modelserver.observe.profile import PROFILE_FILE

EXPECTED = {
    "housing": {*FEATURES, "output.median_house_value"},
    "fashion": {"image.mean_c0", "image.std", "image.near_constant", "predicted_class", "confidence"},
    "text": {"text.length", "text.upper_fraction", "predicted_class", "confidence"},
}


@pytest.mark.parametrize("model", list(EXPECTED))
def test_every_version_carries_its_reference_profile(model_repo: Path, model: str) -> None:
    profile = json.loads((model_repo / model / "1" / PROFILE_FILE).read_text())
    assert profile["model"] == model and profile["rows"] > 100
    assert set(profile["features"]) == EXPECTED[model]
    for name, stats in profile["features"].items():
        assert sum(stats["counts"]) > 0, name
        if stats["kind"] == "numeric":
            assert len(stats["counts"]) == len(stats["edges"]) + 1 and stats["sample"], name
            assert stats["quantiles"]["p5"] <= stats["quantiles"]["p50"] <= stats["quantiles"]["p95"]
    if model == "fashion":
        assert profile["image_sizes"] == {"image": {"height": 28, "width": 28}}
        assert profile["features"]["predicted_class"]["categories"] == profile["labels"]
