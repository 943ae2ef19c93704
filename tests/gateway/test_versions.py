"""gateway.routes.versions: a version's model card and training curves from the repository, the 404 table
(unknown model, non-integer or missing version, traversal), and the ``model`` label of the request metrics.

(The same against the real processes and exported models: test_versions_e2e.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from devtools.fashion import encode
from gateway.app import create_app
from gateway.settings import Settings

CARD = {
    "name": "fashion",
    "version": 1,
    "created": "2026-11-23T12:00:00+00:00",
    "task": "image_classification",
    "metrics": {"accuracy": 0.81, "baseline_accuracy": 0.1},
    "parameters": 1234,
    "curves": ["training_curves.png"],
    "extra_field": {"kept": True},
}
CONFIG = """model_config_list {
  config { name: "fashion" base_path: "%(root)s/fashion" model_platform: "tensorflow" }
  config { name: "half" base_path: "%(root)s/half" model_platform: "tensorflow" }
}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    version = root / "fashion" / "1"
    version.mkdir(parents=True)
    (version / "model_card.json").write_text(json.dumps(CARD))
    (version / "training_curves.png").write_bytes(encode(Image.new("RGB", (8, 4), (200, 10, 10)), "PNG"))
    (root / "fashion" / "2").mkdir()
    (root / "fashion" / "2" / "model_card.json").write_text("{not json")
    (root / "fashion" / "3").mkdir()
    (root / "fashion" / "3" / "model_card.json").write_text("[1, 2]")
    (root / "half" / "1").mkdir(parents=True)
    (tmp_path / "secret.json").write_text('{"secret": true}')
    (root / "models.config").write_text(CONFIG % {"root": root})
    return root


@pytest.fixture
def client(repo: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_config_file=repo / "models.config",
        default_model_server="127.0.0.1:9",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_card_is_the_published_json(client: TestClient) -> None:
    reply = client.get("/v1/models/fashion/versions/1/card")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == CARD


def test_curves_are_the_published_png(client: TestClient, repo: Path) -> None:
    reply = client.get("/v1/models/fashion/versions/1/curves.png")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.content == (repo / "fashion" / "1" / "training_curves.png").read_bytes()


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/models/nope/versions/1/card", "model_not_found"),
        ("/v1/models/nope/versions/1/curves.png", "model_not_found"),
        ("/v1/models/fashion/versions/latest/card", "model_file_not_found"),
        ("/v1/models/fashion/versions/1.5/card", "model_file_not_found"),
        ("/v1/models/fashion/versions/-1/card", "model_file_not_found"),
        ("/v1/models/fashion/versions/9/card", "model_file_not_found"),
        ("/v1/models/fashion/versions/9/curves.png", "model_file_not_found"),
        ("/v1/models/half/versions/1/card", "model_file_not_found"),  # a version without a card
        ("/v1/models/half/versions/1/curves.png", "model_file_not_found"),
        ("/v1/models/fashion/versions/%2E%2E/card", "model_file_not_found"),
        ("/v1/models/fashion/versions/..%2F..%2F..%2Fsecret.json/card", "not_found"),
        ("/v1/models/fashion/versions/1%2F..%2F..%2F..%2Fsecret.json%00/card", "not_found"),
        ("/v1/models/..%2F..%2Ffashion/versions/1/card", "not_found"),
        ("/v1/models/%2E%2E/versions/1/card", "model_not_found"),
    ],
)
def test_not_found_table(client: TestClient, path: str, code: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 404, reply.text
    body = reply.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "true" not in reply.text  # nothing of secret.json


@pytest.mark.parametrize(("version", "why"), [(2, "not valid JSON"), (3, "not a model card object")])
def test_broken_card_is_a_clear_error(client: TestClient, version: int, why: str) -> None:
    reply = client.get(f"/v1/models/fashion/versions/{version}/card")
    assert reply.status_code == 500
    assert reply.json()["error"] == {
        "code": "model_file_invalid",
        "message": f"model_card.json of model 'fashion' version {version} is broken: {why}",
    }


def test_openapi_documents_card_and_curves(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    card = paths["/v1/models/{name}/versions/{version}/card"]["get"]["responses"]
    assert card["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelCard"}
    assert "404" in card
    curves = paths["/v1/models/{name}/versions/{version}/curves.png"]["get"]["responses"]
    assert "image/png" in curves["200"]["content"] and "404" in curves


def _request_counts(client: TestClient) -> dict[tuple[str, str, str], float]:
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "gateway_requests_total":
                key = (sample.labels["route"], sample.labels["status"], sample.labels["model"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def test_request_metrics_carry_the_model_label(client: TestClient) -> None:
    client.get("/v1/models/fashion/versions/1/card")
    client.get("/v1/models/fashion/versions/1/card")
    client.get("/v1/models/half/versions/1/card")
    client.get("/v1/models/made-up-name/versions/1/card")
    client.post("/v1/models/another-made-up-name:classify", json={"texts": ["x"]})
    counts = _request_counts(client)
    card = "/v1/models/{name}/versions/{version}/card"
    assert counts[(card, "200", "fashion")] == 2
    assert counts[(card, "404", "half")] == 1
    assert counts[(card, "404", "")] == 1  # an unknown name never becomes a label value
    assert counts[("/v1/models/{name}:classify", "404", "")] == 1
    assert {model for _, _, model in counts} <= {"fashion", "half", ""}
    latency = client.get("/metrics").text
    assert f'gateway_request_seconds_count{{method="GET",model="fashion",route="{card}"}} 2.0' in latency
