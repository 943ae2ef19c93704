"""Traces end to end: one gateway upload is one trace across two real processes (issue 28, part 4).

The gateway and the model server each write their spans as JSON lines (``GATEWAY_TRACE_FILE``,
``MODELSERVER_TRACE_FILE``: the JSON-lines exporters of ``gateway.tracing`` and
``modelserver.observe.tracing``); the test reads both files and checks names, the shared trace id and the
parent links. The model server runs with batching on so its spans include the queue wait and batch size.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.exported import LIMITS, models_config
from devtools.fashion import encode, fashion_test_images
from devtools.servers import Gateway, ModelServerHandle, start_gateway, start_modelserver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GATEWAY_SPANS = {"gateway.predict", "upload decode", "preprocessing", "upstream call"}
SERVER_SPANS = {"modelserver.Predict", "queue wait", "session run", "response encoding"}


@pytest.fixture(scope="module")
def fashion_repo(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.api import export_model  # TensorFlow loads here

    root = tmp_path_factory.mktemp("trace_repo")
    export_model("fashion", root, version=1, epochs=1, limit=LIMITS["fashion"], data_dir=data_dir)
    (root / "models.config").write_text(models_config(root, ("fashion",)), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def traced(
    fashion_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, ModelServerHandle, Path]]:
    logs = tmp_path_factory.mktemp("trace_logs")
    with start_modelserver(
        fashion_repo / "models.config",
        extra_flags=["--enable_batching"],
        log_path=logs / "modelserver.log",
        env={"MODELSERVER_TRACE_FILE": str(logs / "modelserver.jsonl")},
    ) as server:
        env = {
            "GATEWAY_DEFAULT_MODEL_SERVER": server.grpc_target,
            "GATEWAY_MODEL_CONFIG_FILE": str(fashion_repo / "models.config"),
            "GATEWAY_TRACE_FILE": str(logs / "gateway.jsonl"),
            "GATEWAY_TRACE_SAMPLE_RATIO": "1",  # every upload; the model server follows the traceparent's flag
            "GATEWAY_UPLOAD_LOG_DIR": str(logs / "uploads"),
            "GATEWAY_UPLOAD_LOG_SAMPLE_RATE": "1",
        }
        gateway = start_gateway(env, logs / "gateway.log")
        try:
            yield gateway, server, logs
        finally:
            gateway.process.stop()


def _spans(path: Path, trace_id: str, names: set[str]) -> dict[str, dict[str, Any]]:
    """The spans of one trace in ``path`` by name, once all of ``names`` arrived (exports are batched)."""
    deadline = time.monotonic() + 60  # a hang guard only
    while True:
        found: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record["trace_id"] == trace_id:
                    found[record["name"]] = record
        if names <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _trace_id(path: Path) -> str:
    deadline = time.monotonic() + 60
    while not path.exists() or "gateway.predict" not in path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the gateway wrote no span"
        time.sleep(0.1)
    roots = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    return str(next(r["trace_id"] for r in roots if r["name"] == "gateway.predict"))


def test_one_upload_is_one_trace(traced: tuple[Gateway, ModelServerHandle, Path], data_dir: Path) -> None:
    gateway, _, logs = traced
    image = fashion_test_images(data_dir, 1)[0][0]
    with gateway.client() as http:
        reply = http.post(
            "/v1/models/fashion:predict", files={"file": ("0.png", encode(image, "PNG"), "image/png")}
        )
    assert reply.status_code == 200, reply.text
    trace_id = _trace_id(logs / "gateway.jsonl")
    ours = _spans(logs / "gateway.jsonl", trace_id, GATEWAY_SPANS)
    theirs = _spans(logs / "modelserver.jsonl", trace_id, SERVER_SPANS)
    assert ours.keys() == GATEWAY_SPANS
    assert theirs.keys() == SERVER_SPANS, "the model server's spans are not in the gateway's trace"
    root = ours["gateway.predict"]
    assert root["parent_id"] is None
    for name in ("upload decode", "preprocessing", "upstream call"):
        assert ours[name]["parent_id"] == root["span_id"], name
    server = theirs["modelserver.Predict"]
    assert server["parent_id"] == ours["upstream call"]["span_id"]  # the traceparent crossed gRPC
    for name in ("queue wait", "session run", "response encoding"):
        assert theirs[name]["parent_id"] == server["span_id"], name
    assert theirs["session run"]["attributes"]["batch_size"] >= 1
    assert theirs["queue wait"]["end"] <= theirs["session run"]["start"]


def test_upload_logged_with_its_answer(
    traced: tuple[Gateway, ModelServerHandle, Path], data_dir: Path
) -> None:
    """Raw-upload logging (gateway.upload_log) through the real gateway: the PNG's bytes and the reply."""
    gateway, _, logs = traced
    png = encode(fashion_test_images(data_dir, 1, start=7)[0][0], "PNG")
    with gateway.client() as http:
        reply = http.post("/v1/models/fashion:classify", files={"file": ("seven.png", png, "image/png")})
    assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + 60  # a hang guard only
    while True:
        lines = [
            json.loads(x) for p in (logs / "uploads").glob("uploads-*") for x in p.read_text().splitlines()
        ]
        logged = [r for r in lines if r["route"] == "classify"]
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(logged) == 1
    while "gateway.classify" not in (logs / "gateway.jsonl").read_text():  # :classify is traced as well
        assert time.monotonic() < deadline, "no gateway.classify span"
        time.sleep(0.1)
    assert base64.b64decode(logged[0]["files"][0]["data"]) == png
    assert logged[0]["reply"] == reply.json()


def test_rest_traceparent_header(traced: tuple[Gateway, ModelServerHandle, Path]) -> None:
    """A client calling the model server's REST port directly with a ``traceparent`` joins its trace."""
    _, server, logs = traced
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    reply = httpx.post(
        f"{server.url}/v1/models/fashion:predict",
        json={"instances": [[[[0.5]] * 28] * 28]},
        headers={"traceparent": f"00-{trace_id}-{parent}-01"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    spans = _spans(logs / "modelserver.jsonl", trace_id, SERVER_SPANS)
    assert spans["modelserver.Predict"]["parent_id"] == parent
    assert spans["session run"]["parent_id"] == spans["modelserver.Predict"]["span_id"]
