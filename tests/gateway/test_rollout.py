"""gateway.rollout: the config sent through HandleReloadConfigRequest, and the atomic state file.

(Applying it to a real server is covered end to end in test_admin_e2e.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.client import ModelClient
from gateway.metrics import Metrics
from gateway.rollout import Rollout
from gateway.settings import Settings

CONFIG = """model_config_list {
  config { name: "a" base_path: "%(root)s/a" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 1 } } }
  config { name: "b" base_path: "%(root)s/b" model_platform: "tensorflow" }
  config { name: "c" base_path: "%(root)s/c" model_platform: "tensorflow" }
}
"""


@pytest.fixture
def rollout(tmp_path: Path) -> Rollout:
    for name, versions in {"a": (1, 2, 3), "b": (5,), "c": (1,)}.items():
        for v in versions:
            (tmp_path / name / str(v)).mkdir(parents=True)
    (tmp_path / "a" / ".tmp-4-x").mkdir()
    config = tmp_path / "models.config"
    config.write_text(CONFIG % {"root": tmp_path})
    settings = Settings(
        model_config_file=config,
        state_file=tmp_path / "state" / "gw.json",
        model_servers={"c": "other:8500"},
        default_model_server="main:8500",
    )
    return Rollout(settings, ModelClient(settings, Metrics()))


def _entries(rollout: Rollout, address: str) -> dict[str, object]:
    return {c.name: c for c in rollout.render(address).model_config_list.config}


def test_models_are_grouped_by_server(rollout: Rollout) -> None:
    assert set(_entries(rollout, "main:8500")) == {"a", "b"}
    assert set(_entries(rollout, "other:8500")) == {"c"}
    assert rollout.models() == ["a", "b", "c"]


def test_untouched_models_keep_their_policy(rollout: Rollout) -> None:
    entry = _entries(rollout, "main:8500")["a"]
    assert entry.model_version_policy.latest.num_versions == 1 and not entry.version_labels  # type: ignore[attr-defined]


def test_pin_renders_specific_with_label_versions(rollout: Rollout) -> None:
    state = rollout.state("a")
    state.pinned, state.labels = 2, {"stable": 1}
    entry = _entries(rollout, "main:8500")["a"]
    assert list(entry.model_version_policy.specific.versions) == [1, 2]  # type: ignore[attr-defined]
    assert dict(entry.version_labels) == {"stable": 1}  # type: ignore[attr-defined]
    pending = rollout.render("main:8500", pending=("a", "stable")).model_config_list.config[0]
    assert not pending.version_labels and list(pending.model_version_policy.specific.versions) == [1, 2]


def test_labels_without_pin_widen_latest(rollout: Rollout) -> None:
    rollout.state("a").labels = {"old": 1}
    entry = _entries(rollout, "main:8500")["a"]
    assert entry.model_version_policy.latest.num_versions == 3  # type: ignore[attr-defined]


def test_disk_versions_ignore_staging_dirs(rollout: Rollout) -> None:
    assert rollout._disk_versions("a") == [1, 2, 3]


def test_state_file_is_written_atomically_and_read_back(rollout: Rollout, tmp_path: Path) -> None:
    rollout.state("a").pinned = 2
    rollout.state("a").history = [3]
    rollout._write_state()
    path = tmp_path / "state" / "gw.json"
    assert json.loads(path.read_text())["models"]["a"] == {
        "pinned": 2,
        "labels": {},
        "history": [3],
        "seen": [],
    }
    assert [p.name for p in path.parent.iterdir()] == ["gw.json"]  # no temp file left behind
    again = Rollout(rollout._settings, rollout._client)
    assert again.state("a").pinned == 2 and again.state("a").history == [3]


def test_corrupt_state_file_fails_fast(rollout: Rollout, tmp_path: Path) -> None:
    path = tmp_path / "state" / "gw.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{broken")
    with pytest.raises(ValueError, match="GATEWAY_STATE_FILE"):
        Rollout(rollout._settings, rollout._client)
