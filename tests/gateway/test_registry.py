"""gateway.rollout.registry and the catalog's run-time changes: version policies of an added model, which
replicas serve it, and a catalog that takes up models another gateway added to or removed from the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from gateway.errors import BadRequest
from gateway.rollout.catalog import Catalog
from gateway.rollout.desired import ModelState
from gateway.rollout.registry import NAME, model_entry, served_versions
from gateway.settings import Settings

CONFIG = """model_config_list {
  config { name: "half" base_path: "%s/half" model_platform: "tensorflow" }
}
"""


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        (None, [5]),
        ({"latest": {"num_versions": 2}}, [3, 5]),
        ({"all": {}}, [1, 3, 5]),
        ({"specific": {"versions": [3, 1]}}, [1, 3]),
        ({"specific": {"versions": [4]}}, [4]),  # not on disk: the registry refuses it
    ],
)
def test_policies_serve(policy: dict[str, Any] | None, served: list[int]) -> None:
    entry = model_entry("m", "/models/m", policy)
    assert served_versions(entry, [1, 3, 5]) == served
    assert entry.base_path == "/models/m" and entry.model_platform == "tensorflow"


@pytest.mark.parametrize("policy", [{"newest": {}}, {"latest": {"num_versions": "x"}}, {"specific": {}}])
def test_bad_policies_are_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        model_entry("m", "/models/m", policy)


@pytest.mark.parametrize(
    ("name", "valid"),
    [("flowers", True), ("my-model.v2_b", True), ("9lives", True), ("", False), ("-x", False),
     (".hidden", False), ("a/b", False), ("a:b", False), ("a b", False), ("x" * 65, False)],
)  # fmt: skip
def test_model_names(name: str, valid: bool) -> None:
    assert bool(NAME.fullmatch(name)) is valid


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    config = tmp_path / "models.config"
    config.write_text(CONFIG % tmp_path, encoding="utf-8")
    replicas = json.dumps({"half": ["10.0.0.1:8500", "10.0.0.2:8500"]})
    return Catalog(
        Settings(model_config_file=config, model_replicas=replicas, default_model_server="10.0.0.1:8500")
    )


def test_an_added_model_is_served_by_the_replicas_of_its_file(catalog: Catalog, tmp_path: Path) -> None:
    assert catalog.replica_targets("new") == ["10.0.0.1:8500"]  # unknown: the default server
    catalog.add("new", str(tmp_path / "new"), catalog.stores[0])
    assert catalog.replica_targets("new") == ["10.0.0.1:8500", "10.0.0.2:8500"]
    assert catalog.models() == ["half", "new"] and "new" in catalog
    catalog.retire("new")  # unloading: not offered to requests, still pushed to its replicas
    assert catalog.models() == ["half"] and "new" not in catalog
    assert catalog.models_in(catalog.stores[0]) == ["half", "new"]
    catalog.remove("new")
    assert catalog.models_in(catalog.stores[0]) == ["half"]


def test_sync_takes_up_another_gateways_changes(catalog: Catalog, tmp_path: Path) -> None:
    heard: list[str] = []
    catalog.on_change(heard.append)
    store = catalog.stores[0]
    desired = store.read()
    entry = model_entry("other", str(tmp_path / "other"), None)
    desired.models["other"] = ModelState(base=text_format.MessageToString(entry))
    assert catalog.sync(store, desired) == ["other"]
    assert "other" in catalog and catalog.repository.base_path("other") is None  # not on disk here
    del desired.models["other"]
    assert catalog.sync(store, desired) == ["other"] and catalog.models() == ["half"]
    assert catalog.sync(store, desired) == []
    assert heard == ["other", "other"]  # added, removed: the caches about it are dropped each time
