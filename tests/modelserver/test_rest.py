"""modelserver.protocols.tfs.rest end to end: a real ``python -m modelserver --rest_api_port=...`` on loopback, spoken to
with plain HTTP. TF Serving's documented REST examples must give the same JSON here, errors included.

Repository: ``half_plus_two`` with version 1 = half_plus_three (x/2 + 3) and version 2 = half_plus_two
(x/2 + 2), labels ``previous`` -> 1 and ``stable`` -> 2, so "latest" answers as TF Serving's half_plus_two
test model and ``/versions/1`` as the doc's half_plus_three; plus ``multi_input`` and ``strings``.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.servers import ModelServerHandle, start_modelserver

pytestmark = pytest.mark.e2e

HP2 = "/v1/models/half_plus_two"
OK_STATUS = {"error_code": "OK", "error_message": ""}
MONITORING_PATH = "/monitoring/prometheus/metrics"


def _config(root: Path) -> str:
    def model(name: str, extra: str = "") -> str:
        return (
            f'  config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow"'
            f" model_version_policy {{ all {{}} }} {extra} }}\n"
        )

    labels = "version_labels { key: 'previous' value: 1 } version_labels { key: 'stable' value: 2 }"
    models = model("half_plus_two", labels) + model("multi_input") + model("strings")
    return "model_config_list {\n" + models + "}\n"


@pytest.fixture(scope="module")
def server(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    root = tmp_path_factory.mktemp("rest_repo")
    shutil.copytree(tiny["half_plus_three"], root / "half_plus_two" / "1")
    shutil.copytree(tiny["half_plus_two"], root / "half_plus_two" / "2")
    shutil.copytree(tiny["multi_input"], root / "multi_input" / "1")
    shutil.copytree(tiny["strings"], root / "strings" / "1")
    (root / "models.config").write_text(_config(root), encoding="utf-8")
    (root / "monitoring.config").write_text(
        f'prometheus_config {{ enable: true, path: "{MONITORING_PATH}" }}\n', encoding="utf-8"
    )
    with start_modelserver(
        root / "models.config",
        extra_flags=[f"--monitoring_config_file={root / 'monitoring.config'}"],
        log_path=root / "modelserver.log",
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def http(server: ModelServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


def _call(http: httpx.Client, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    return http.request(method, path, content=content, **kwargs)


# ----------------------------------------------------------------------------- documented examples

EXAMPLES = [
    # tensorflow_model_server_test.py (model "default" = half_plus_two)
    ("POST", f"{HP2}:predict", {"instances": [2.0, 3.0, 4.0]}, {"predictions": [3.0, 3.5, 4.0]}),
    ("POST", f"{HP2}:predict", {"inputs": [2.0, 3.0, 4.0]}, {"outputs": [3.0, 3.5, 4.0]}),
    (
        "POST",
        f"{HP2}:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
        {"results": [[["", 3.0]]]},
    ),
    (
        "POST",
        f"{HP2}:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
        {"results": [3.0]},
    ),
    # api_rest.md (half_plus_three)
    ("POST", f"{HP2}/versions/1:predict", {"instances": [1.0, 2.0, 5.0]}, {"predictions": [3.5, 4.0, 5.5]}),
    (
        "POST",
        f"{HP2}/versions/1:regress",
        {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]},
        {"results": [3.5, 4.0]},
    ),
    # labels, URL decoding, case-insensitive paths
    ("POST", f"{HP2}/labels/previous:predict", {"instances": [1.0]}, {"predictions": [3.5]}),
    ("POST", f"{HP2}/labels/st%61ble:predict", {"instances": [1.0]}, {"predictions": [2.5]}),
    ("POST", "/V1/Models/half_plus_two/VERSIONS/1:predict", {"inputs": [1.0]}, {"outputs": [3.5]}),
    # named signature, float32 printed as TF Serving prints it (2.1, not 2.0999999046325684)
    (
        "POST",
        f"{HP2}:predict",
        {"signature_name": "serving_default", "instances": [0.2, -4]},
        {"predictions": [2.1, 0.0]},
    ),
    # a context is merged into every example
    (
        "POST",
        f"{HP2}:regress",
        {"signature_name": "regress_x_to_y2", "context": {"x2": 4.0}, "examples": [{"a": 1}, {"a": 2}]},
        {"results": [5.0, 5.0]},
    ),
    # several inputs and outputs: objects per row / one object of tensors
    (
        "POST",
        "/v1/models/multi_input:predict",
        {"instances": [{"a": [1, 2], "b": 3}, {"a": [3, 4], "b": 1}]},
        {"predictions": [{"scaled": [3.0, 6.0], "sum": 6.0}, {"scaled": [3.0, 4.0], "sum": 8.0}]},
    ),
    (
        "POST",
        "/v1/models/multi_input:predict",
        {"inputs": {"a": [[1, 2]], "b": [3]}},
        {"outputs": {"scaled": [[3.0, 6.0]], "sum": [6.0]}},
    ),
    # strings in, b64 objects decoded; an output named *_bytes comes back as b64
    (
        "POST",
        "/v1/models/strings:predict",
        {"instances": ["abc", {"b64": "aGk="}]},
        {
            "predictions": [
                {"length": 3, "upper_bytes": {"b64": "QUJD"}},
                {"length": 2, "upper_bytes": {"b64": "SEk="}},
            ]
        },
    ),
    (
        "POST",
        "/v1/models/strings:predict",
        {"inputs": ["caf\u00e9"]},
        {"outputs": {"length": [5], "upper_bytes": [{"b64": "Q0FGw6k="}]}},
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), EXAMPLES)
def test_documented_requests_get_tf_serving_json(
    http: httpx.Client, method: str, path: str, body: Any, expected: Any
) -> None:
    reply = _call(http, method, path, body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == expected


def test_nan_and_infinity_round_trip(http: httpx.Client) -> None:
    reply = _call(http, "POST", f"{HP2}:predict", b'{"instances": [NaN, Infinity, -Infinity]}')
    assert reply.status_code == 200, reply.text
    assert reply.text == '{"predictions":[NaN,Infinity,-Infinity]}'


def test_gzip_request_body(http: httpx.Client) -> None:
    body = gzip.compress(json.dumps({"instances": [2.0]}).encode())
    reply = _call(http, "POST", f"{HP2}:predict", body, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [3.0]}


def test_large_row_request(http: httpx.Client) -> None:
    values = [float(i) for i in range(2000)]
    reply = _call(http, "POST", f"{HP2}:predict", {"instances": values})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [v / 2 + 2 for v in values]}


# ----------------------------------------------------------------------------- status and metadata


def _version_status(version: int) -> dict[str, Any]:
    return {"version": str(version), "state": "AVAILABLE", "status": OK_STATUS}


STATUS = [
    (f"{HP2}/versions/2", [_version_status(2)]),
    (f"{HP2}/labels/previous", [_version_status(1)]),
    ("/v1/models/multi_input", [_version_status(1)]),
]


@pytest.mark.parametrize(("path", "expected"), STATUS)
def test_status_is_protobuf_json_with_string_versions(http: httpx.Client, path: str, expected: Any) -> None:
    reply = _call(http, "GET", path)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"model_version_status": expected}


def test_status_without_version_lists_all_versions(http: httpx.Client) -> None:
    reply = _call(http, "GET", HP2)
    assert reply.status_code == 200, reply.text
    statuses = reply.json()["model_version_status"]
    assert sorted(statuses, key=lambda s: s["version"]) == [_version_status(1), _version_status(2)]


def test_metadata_is_printed_as_tf_serving_prints_it(http: httpx.Client) -> None:
    reply = _call(http, "GET", f"{HP2}/versions/2/metadata")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "2"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y", "regress_x_to_y2"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    x = default["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    assert default["outputs"]["y"]["dtype"] == "DT_FLOAT"
    assert signatures["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    # latest: same document, version "2"
    latest = _call(http, "GET", f"{HP2}/metadata").json()
    assert latest["model_spec"]["version"] == "2"


# ----------------------------------------------------------------------------- errors

ERRORS = [
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/", None, 400, "Malformed request: GET /v1/models/"),
    ("PUT", HP2, None, 400, f"Malformed request: PUT {HP2}"),
    ("GET", f"{HP2}:predict", None, 400, f"Malformed request: GET {HP2}:predict"),
    ("POST", HP2, {}, 400, f"Malformed request: POST {HP2}"),
    ("POST", f"{HP2}:explain", {}, 400, f"Malformed request: POST {HP2}:explain"),
    # TF Serving matches the URL case-insensitively but compares the verb exactly
    ("POST", f"{HP2}:PREDICT", {}, 400, f"Malformed request: POST {HP2}:PREDICT"),
    (
        "POST",
        f"{HP2}/versions/99999999999999999999:predict",
        {},
        400,
        "Failed to convert version: 99999999999999999999 to numeric.",
    ),
    (
        "POST",
        "/v1/models/half:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Latest(half)",
    ),
    (
        "POST",
        f"{HP2}/versions/7:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Specific(half_plus_two, 7)",
    ),
    (
        "POST",
        f"{HP2}/labels/nope:predict",
        {"instances": [1.0]},
        400,
        "Unrecognized servable version label: nope",
    ),
    ("GET", "/v1/models/half", None, 404, "Could not find any versions of model half"),
    ("GET", f"{HP2}/versions/7", None, 404, "Could not find version 7 of model half_plus_two"),
    ("POST", f"{HP2}:predict", b"", 400, "JSON Parse error: The document is empty"),
    (
        "POST",
        f"{HP2}:predict",
        b'{"instances": [1.0,',
        400,
        "JSON Parse error: Invalid value. at offset: 19",
    ),
    (
        "POST",
        f"{HP2}:predict",
        {"signature_name": "nope", "inputs": [1.0]},
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "POST",
        f"{HP2}:predict",
        {"instances": [{"b64": "AA=="}]},
        400,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
        '{\n    "b64": "AA=="\n} Type: Object is not of expected type: float',
    ),
    ("POST", "/v1/models/strings:predict", {"inputs": [{"b64": "aGk_"}]}, 400, "Unable to base64 decode"),
    (
        "POST",
        "/v1/models/strings:predict",
        {"instances": [{"b64": "aGk_"}]},
        400,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Unable to base64 decode",
    ),
    (
        "POST",
        f"{HP2}:predict",
        {"inputs": [1.0], "instances": [1.0]},
        400,
        'JSON Value: {\n    "inputs": [\n        1.0\n    ],\n    "instances": [\n        1.0\n    ]\n} '
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
    ),
    (
        "POST",
        "/v1/models/multi_input:predict",
        {"instances": [{"a": [1, 2], "b": 3}, {"a": [1], "b": 3}]},
        400,
        "Failed to process element: 1 key: a of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 1",
    ),
    (
        "POST",
        f"{HP2}:regress",
        {"signature_name": "regress_x_to_y"},
        400,
        'JSON Value: {\n    "signature_name": "regress_x_to_y"\n} When method is classify, key \'examples\' is '
        "expected and was not found",
    ),
    # /v2 is the Open Inference Protocol here (tests/modelserver/test_oip_e2e.py); other paths are TF Serving's 404
    ("GET", "/v3/models/half_plus_two", None, 404, "Not found: GET /v3/models/half_plus_two"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), ERRORS)
def test_errors_have_tf_serving_status_and_message(
    http: httpx.Client, method: str, path: str, body: Any, status: int, message: str
) -> None:
    reply = _call(http, method, path, body)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": message}


BAD_TENSORS = [
    # valid JSON that the model cannot take: the data plane answers 400, the server stays up
    # a shape the graph rejects (reduce_sum over axis 1 of a rank-1 `a`): TensorFlow's INVALID_ARGUMENT
    ("/v1/models/multi_input:predict", {"inputs": {"a": [1.0, 2.0], "b": [3.0]}}),
    (f"{HP2}:classify", {"signature_name": "serving_default", "examples": [{"x": 1.0}]}),
    (f"{HP2}:regress", {"signature_name": "regress_x_to_y", "examples": [{"y": 1.0}]}),
    (f"{HP2}:predict", {"instances": [1.0], "signature_name": 7}),
]


@pytest.mark.parametrize(("path", "body"), BAD_TENSORS)
def test_bad_tensors_are_400_with_a_message_never_a_traceback(
    http: httpx.Client, path: str, body: Any
) -> None:
    reply = _call(http, "POST", path, body)
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]
    assert message and "Traceback" not in message
    assert _call(http, "POST", f"{HP2}:predict", {"instances": [2.0]}).json() == {"predictions": [3.0]}


def test_bad_gzip_body_is_400(http: httpx.Client) -> None:
    reply = _call(http, "POST", f"{HP2}:predict", b"not gzip", headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("Failed to decompress the gzip request body")


def test_cors_preflight(http: httpx.Client) -> None:
    ok = _call(http, "OPTIONS", f"{HP2}:predict", headers={"Origin": "https://app.example"})
    assert ok.status_code == 200
    refused = _call(http, "OPTIONS", f"{HP2}:predict")
    assert refused.status_code == 400
    assert "Origin" in refused.json()["error"]
    # CORS headers only with --rest_api_enable_cors_support (off here)
    assert "access-control-allow-origin" not in ok.headers


def test_prometheus_metrics_count_rest_requests(http: httpx.Client) -> None:
    _call(http, "POST", f"{HP2}:predict", {"instances": [1.0]})
    reply = _call(http, "GET", MONITORING_PATH)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    lines = [line for line in reply.text.splitlines() if line.startswith("modelserver_requests_total{")]
    rest_ok = [
        line
        for line in lines
        if 'model="half_plus_two"' in line
        and 'protocol="rest"' in line
        and 'status="OK"' in line
        and 'api="predict"' in line
    ]
    assert rest_ok, "\n".join(lines)
    assert any('status="NOT_FOUND"' in line or 'status="INVALID_ARGUMENT"' in line for line in lines)
