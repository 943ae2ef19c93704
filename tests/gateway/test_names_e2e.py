"""End to end: names a client sends (labels, versions) are matched whole - a trailing newline is not a valid
name, is refused with a 4xx and never written into models.config (``re.match`` with ``$`` took it)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.rollout.operations import MAX_LABELS
from gateway.settings import Settings
from tests.gateway.conftest import ADMIN_TOKEN, settled

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize("label", ["probe%0A", "probe%0D%0Ax", "probe%20", "a" * 65])
def test_a_label_with_a_newline_is_400_and_nothing_is_written(
    http: httpx.Client, live_repo: Path, label: str
) -> None:
    before = (live_repo / "models.config").read_text(encoding="utf-8")
    reply = http.put(f"/v1/admin/models/fashion/labels/{label}", json={"version": 1}, headers=AUTH)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "bad_request"
    assert (live_repo / "models.config").read_text(encoding="utf-8") == before
    assert http.post("/v1/models/fashion:classify", params={"label": "probe\n"}).status_code == 422


def test_a_version_with_a_newline_is_not_a_version(http: httpx.Client) -> None:
    reply = http.get("/v1/models/fashion/versions/1%0A/card")
    assert reply.status_code == 404 and "whole number" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("model_servers", '{"fashion\\n": "h:1"}'), ("default_model_server", "h:8500\n")],
)
def test_settings_names_and_addresses_are_matched_whole(field: str, value: str) -> None:
    with pytest.raises(ValueError, match="model"):
        Settings(model_config_file=None, **{field: value})  # type: ignore[arg-type]


def test_a_model_holds_at_most_64_labels(http: httpx.Client) -> None:
    made = []
    settled(
        http, "fashion", "text", "housing"
    )  # a change writes every model's config: start from a quiet one
    try:
        for index in range(MAX_LABELS + 1):
            reply = http.put(f"/v1/admin/models/housing/labels/l{index}", json={"version": 1}, headers=AUTH)
            if reply.status_code != 200:
                break
            made.append(f"l{index}")
        assert reply.status_code == 409 and "64 labels" in reply.json()["error"]["message"], reply.text
        assert len(_labels(http)) == MAX_LABELS  # the ones it held before count too
        again = http.put(f"/v1/admin/models/housing/labels/{made[0]}", json={"version": 1}, headers=AUTH)
        assert again.status_code == 200  # moving an existing label is no new one
    finally:
        for label in made:
            http.delete(f"/v1/admin/models/housing/labels/{label}", headers=AUTH)


def _labels(http: httpx.Client) -> dict[str, int]:
    models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
    return dict(models["housing"]["labels"])
