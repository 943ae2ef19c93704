"""End to end: a version's model card and training curves through ``python -m gateway`` from the exported
repository, the 404s, the ``model`` label of the request metrics, and a version that failed to load shown as
failed with its error (its own modelserver: half_plus_two/1, then a corrupt version 2 published)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.servers import Gateway, start_gateway, start_modelserver
from devtools.tiny_models import corrupt_version, half_plus_two, publish
from devtools.waiting import wait_until

pytestmark = pytest.mark.e2e
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["fashion", "text", "housing"])
def test_card_of_an_exported_version_is_its_model_card(
    http: httpx.Client, live_repo: Path, name: str
) -> None:
    reply = http.get(f"/v1/models/{name}/versions/1/card")
    assert reply.status_code == 200, reply.text
    card = reply.json()
    assert card == json.loads((live_repo / name / "1" / "model_card.json").read_text())
    assert card["name"] == name and card["version"] == 1 and card["curves"] == ["training_curves.png"]


def test_curves_of_an_exported_version_are_its_png(http: httpx.Client, live_repo: Path) -> None:
    reply = http.get("/v1/models/fashion/versions/2/curves.png")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.content.startswith(PNG_MAGIC)
    assert reply.content == (live_repo / "fashion" / "2" / "training_curves.png").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/nope/versions/1/card",
        "/v1/models/fashion/versions/one/card",
        "/v1/models/fashion/versions/1e3/curves.png",
        "/v1/models/fashion/versions/7/card",
        "/v1/models/half/versions/1/curves.png",  # half_plus_two has no curves
        "/v1/models/fashion/versions/..%2F..%2F..%2F..%2Fetc%2Fpasswd/card",
        "/v1/models/fashion/versions/%2E%2E/card",
        "/v1/models/..%2F..%2Fetc/versions/1/card",
    ],
)
def test_card_and_curves_not_found(http: httpx.Client, path: str) -> None:
    reply = http.get(path)
    assert reply.status_code == 404, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert set(reply.json()["error"]) == {"code", "message"} and "root:" not in reply.text


def _requests_by(text: str, route: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "gateway_requests_total" and s.labels["route"] == route:
                out[s.labels["model"]] = out.get(s.labels["model"], 0) + s.value
    return out


def test_request_metrics_carry_the_model_label(http: httpx.Client) -> None:
    route = "/v1/models/{name}:classify"
    before = _requests_by(http.get("/metrics").text, route)
    assert http.post("/v1/models/text:classify", json={"texts": ["hello"]}).status_code == 200
    assert http.post("/v1/models/no-such-model:classify", json={"texts": ["x"]}).status_code == 404
    after = _requests_by(http.get("/metrics").text, route)
    assert after.get("text", 0) - before.get("text", 0) == 1
    assert after.get("", 0) - before.get("", 0) == 1
    assert "no-such-model" not in after and set(after) <= {"fashion", "text", "housing", "half", ""}


# -- a version that fails to load ---------------------------------------------------------------------------

CONFIG = """model_config_list {
  config { name: "half" base_path: "%s" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 2 } } }
}
"""


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    """A modelserver + gateway over ``half/1`` (good); tests publish a corrupt ``half/2``."""
    root = tmp_path_factory.mktemp("failing_repo")
    good = half_plus_two(root / "build" / "half_plus_two")
    publish(good, root / "half", 1)
    (root / "models.config").write_text(CONFIG % (root / "half"), encoding="utf-8")
    with start_modelserver(root / "models.config", rest=False, log_path=root / "modelserver.log") as server:
        env = {
            "GATEWAY_DEFAULT_MODEL_SERVER": server.grpc_target,
            "GATEWAY_MODEL_CONFIG_FILE": str(root / "models.config"),
        }
        gateway = start_gateway(env, root / "gateway.log")
        try:
            yield gateway, root
        finally:
            gateway.process.stop()


def _half_versions(client: httpx.Client) -> dict[int, dict]:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    return {v["version"]: v for v in models["half"]["versions"]}


def test_failed_version_shows_as_failed_with_its_error(failing: tuple[Gateway, Path]) -> None:
    gateway, root = failing
    with gateway.client() as client:
        assert _half_versions(client)[1] == {"version": 1, "state": "AVAILABLE", "error": None}
        broken = corrupt_version(root / "half" / "1", root / "half" / ".tmp-2-corrupt", "missing_variables")
        broken.rename(root / "half" / "2")  # one rename, as the export publishes
        wait_until(lambda: _half_versions(client).get(2, {}).get("state") == "END", "version 2 to fail")
        versions = _half_versions(client)
        assert versions[2]["state"] == "END" and versions[2]["error"], versions
        assert versions[1] == {"version": 1, "state": "AVAILABLE", "error": None}
        assert client.post("/v1/models/half:predict", json={"records": [{"x": 2.0}]}).json()["version"] == 1
