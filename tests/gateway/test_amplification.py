"""Small requests that cost the gateway large memory (issue 25), in process: a JSON body of many wrong-typed
values stops at the first, a JSON body of many values is refused before it is parsed, admin bodies are
small, and images are costed from their headers (channels and intermediate copies) before any decode."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devtools.procs import REPO_ROOT
from gateway.app import create_app
from gateway.errors import TooManyPixels
from gateway.preprocess.image import DecodeBudget, ImageSpec, images_to_batch
from gateway.settings import Settings
from reliability.gateway_attack import png_of_zeros

FASHION = ImageSpec(28, 28, 1, background="black")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_config_file=REPO_ROOT / "models" / "models.config", default_model_server="127.0.0.1:9"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"texts": [' + b",".join([b"1"] * 250_000) + b"]}", "too many values"),
        (b'{"texts": [' + b",".join([b'"a"'] * 500_000) + b"]}", "too many values"),
        (b'{"texts": ["a", 1, 2, 3]}', "texts.1"),
        (b'{"records": [{"a": 1.0, "b": true, "c": {}}]}', "records.0.b"),
        (b'{"records": "x"}', "valid list"),
        (b'{"texts": ["' + b"a,{[" * 100_000 + b'"]}', "model"),  # brackets inside a string are no values
    ],
    ids=[
        "250,000 wrong-typed values",
        "500,000 strings",
        "first wrong text",
        "first wrong feature",
        "not a list",
        "commas in a text",
    ],
)
def test_a_json_body_stops_at_its_first_problem(client: TestClient, body: bytes, fragment: str) -> None:
    tracemalloc.start()
    try:
        reply = client.post(
            "/v1/models/text:classify", content=body, headers={"content-type": "application/json"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status_code in (400, 503), reply.text
    assert fragment in reply.json()["error"]["message"]
    assert peak < 16 * 2**20  # pydantic built 250,000 error objects here: +253 MiB


def test_admin_bodies_are_small(client: TestClient) -> None:
    body = b'{"version": 1, "x": "' + b"a" * 100_000 + b'"}'
    reply = client.post(
        "/v1/admin/models/fashion:promote", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    text = {"texts": ["a" * 100_000]}  # inference bodies keep the upload limit
    for verb in (":classify", ":predict", ":explain"):
        assert client.post(f"/v1/models/text{verb}", json=text).status_code != 413, verb


def test_images_are_costed_from_their_headers_before_any_decode() -> None:
    rgba = png_of_zeros(2000, 2000, 4)  # 4 Mpx: 4 bytes a pixel, its RGBA copy, canvas and composite, ...
    budget = DecodeBudget(64 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(TooManyPixels, match="MiB budget"):
            images_to_batch([("a.png", rgba), ("b.png", rgba)], FASHION, 40_000_000, budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20 and budget.used == 0
    gray = png_of_zeros(1000, 1000, 1)
    values, dims = images_to_batch([("c.png", gray)], FASHION, 40_000_000, budget)
    assert dims == [1, 28, 28, 1] and len(values) == 784 and budget.used == 0


def test_the_decode_budget_holds_concurrent_decodes_within_it() -> None:
    budget = DecodeBudget(100)
    entered, release = threading.Event(), threading.Event()

    def decode() -> None:
        with budget.reserve(50):
            entered.set()
            release.wait(30)

    with budget.reserve(80):
        waiter = threading.Thread(target=decode)
        waiter.start()
        assert not entered.wait(0.2)  # 80 + 50 > 100: it waits (a correct budget never lets it in here)
    assert entered.wait(30) and budget.used == 50
    release.set()
    waiter.join(30)
    assert budget.used == 0
