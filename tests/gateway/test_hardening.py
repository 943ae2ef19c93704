"""Gateway limits and refusals from issue 17, in process (no model server is reached): JSON bodies stop at
one upload's size while streaming, multipart files and part headers stop while streaming, strict record
numbers, JSON the stdlib cannot convert, gzip bodies, browser headers, and /docs without a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from devtools.procs import REPO_ROOT
from gateway.app import create_app
from gateway.errors import BadRequest
from gateway.preprocess.tabular import validate_records
from gateway.schemas import RecordsBody
from gateway.settings import Settings

LIMIT = 8192
HOUSING = "/v1/models/housing:regress"
FEATURES = {"latitude": {"missing": None}, "median_income": {"missing": "NaN"}}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_config_file=REPO_ROOT / "models" / "models.config",
        max_upload_bytes=LIMIT,
        max_files=8,
        default_model_server="127.0.0.1:9",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_json_body_is_limited_to_one_upload_not_to_all_files(client: TestClient) -> None:
    # The multipart limit is 8 files x 8192 bytes; a JSON body is held in memory, so it gets 8192.
    def chunks() -> Iterator[bytes]:
        yield b'{"texts": ["'
        for _ in range(20):
            yield b"a" * 1000

    reply = client.post(HOUSING, content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert "JSON body is over 8192 bytes" in reply.json()["error"]["message"]


def _multipart(header_value: bytes, data: bytes) -> bytes:
    return (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + header_value + b'"\r\n'
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--b--\r\n"
    )


def test_a_multipart_file_stops_at_the_upload_limit_while_streaming(client: TestClient) -> None:
    reply = client.post(
        "/v1/models/fashion:classify",
        content=_multipart(b"a.png", b"\x89PNG" * 4000),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert reply.status_code == 413 and "over 8192 bytes" in reply.json()["error"]["message"]


def test_a_huge_multipart_part_header_is_400(client: TestClient) -> None:
    reply = client.post(
        "/v1/models/fashion:classify",
        content=_multipart(b"a" * 20_000, b"x"),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert reply.status_code in (400, 413)
    assert reply.json()["error"]["code"] in ("bad_request", "payload_too_large")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"records": [{"latitude": 9' + b"9" * 5000 + b"}]}", "not valid JSON"),
        (b'{"records": [{"latitude": true}]}', "records"),
    ],
    ids=["5000-digit integer", "boolean"],
)
def test_record_numbers_are_strict(client: TestClient, body: bytes, fragment: str) -> None:
    reply = client.post(HOUSING, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert fragment in reply.json()["error"]["message"]


def test_strict_schema_and_overflowing_integers() -> None:
    with pytest.raises(ValidationError, match=r"records\.0\.latitude"):
        RecordsBody.model_validate({"records": [{"latitude": True}]})
    # text is a valid JSON value (a model may take a string feature), but never a number for a float feature
    with pytest.raises(BadRequest, match=r"records\[0\]\.latitude must be a number"):
        validate_records(
            RecordsBody.model_validate({"records": [{"latitude": "37.88"}]}).records, FEATURES, max_items=4
        )
    with pytest.raises(BadRequest, match="finite number"):
        validate_records([{"latitude": 10**400}], FEATURES, max_items=4)


def test_gzip_bodies_are_415_not_inflated(client: TestClient) -> None:
    reply = client.post(
        HOUSING,
        content=b"\x1f\x8b" + b"\0" * 100,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert reply.status_code == 415 and "Content-Encoding" in reply.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/", "/v1/models", "/docs", "/healthz"])
def test_browser_headers_on_every_reply(client: TestClient, path: str) -> None:
    reply = client.get(path)
    policy = reply.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "DENY"


def test_console_policy_allows_no_inline_script(client: TestClient) -> None:
    policy = client.get("/").headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}" in page.text
        assert client.get(f"/docs/assets/{asset}").status_code == 200
    assert client.get("/redoc").status_code == 404
