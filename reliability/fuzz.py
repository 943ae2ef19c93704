"""API fuzzing against the real processes: schemathesis generates requests from the gateway's own
``/openapi.json`` (every operation, valid and invalid data) and checks each reply against the schema;
hypothesis generates modelserver REST calls (names, versions, labels, verbs, arbitrary JSON bodies);
schemathesis generates Open Inference Protocol (KServe v2) calls from ``protos/kserve/rest_predict_v2.yaml``
against the modelserver's ``/v2`` paths, and hypothesis binary-data bodies whose header lengths lie.

Figures: cases tried, server errors (5xx other than a deliberate 503 with Retry-After), schema violations.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from reliability.outcome import Outcome
from reliability.replies import leaks
from reliability.stack import Stack

__all__ = ["OIP_SCHEMA", "fuzz_gateway", "fuzz_modelserver", "fuzz_oip", "run"]

OIP_SCHEMA = Path(__file__).resolve().parents[1] / "protos" / "kserve" / "rest_predict_v2.yaml"

MODELS = ("fashion", "text", "housing")
# Adding or removing a whole model (PUT / DELETE /v1/admin/models/{name}) is fuzzed on a name the stack does
# not serve: with the admin token and a real name, a generated DELETE would take a model away from every
# scenario that shares the stack after the fuzzing.
SCRATCH = "fuzz-scratch"
# Schema checks that say something about the server (the others judge the API design, e.g. that a
# negative case was "accepted" when FastAPI coerces a value the way HTTP allows).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )


def _deliberate(response: httpx.Response) -> bool:
    return response.status_code == 503 and "retry-after" in response.headers


def _with_name(pair: tuple[schemathesis.Case, str]) -> schemathesis.Case:
    case, name = pair
    case.path_parameters = {**(case.path_parameters or {}), "name": name}
    return case


class _GatewayTally:
    def __init__(self) -> None:
        self.tried = self.server_errors = self.violations = self.leaking = 0
        self.per_operation: dict[str, int] = {}


def _fuzz_operation(
    operation: Any,
    stack: Stack,
    session: requests.Session,
    tally: _GatewayTally,
    outcome: Outcome,
    examples: int,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    tally.per_operation[label] = 0
    admin = {"Authorization": f"Bearer {stack.admin_token}"}

    strategy = operation.as_strategy()
    whole_model = operation.path == "/v1/admin/models/{name}" and operation.method.upper() in {
        "PUT",
        "DELETE",
    }
    if whole_model:
        strategy = st.tuples(strategy, st.just(SCRATCH)).map(_with_name)
    elif "{name}" in operation.path:  # half the cases on a real model, to get past "no such model"
        strategy = st.one_of(strategy, st.tuples(strategy, st.sampled_from(MODELS)).map(_with_name))

    @_settings(examples)
    @given(case=strategy)
    def one(case: schemathesis.Case) -> None:
        # admin operations: two thirds with the right token (to get past auth), one third as generated
        headers = dict(admin) if "/admin/" in case.path and tally.tried % 3 else None
        tally.tried += 1
        try:
            response = case.call(base_url=stack.gateway_url, session=session, headers=headers, timeout=30)
        except requests.RequestException as exc:
            tally.server_errors += 1
            outcome.failures.append(f"gateway {label}: no reply ({type(exc).__name__}: {exc})")
            return
        tally.per_operation[label] += 1
        status, text = response.status_code, response.text or ""
        deliberate = status == 503 and "retry-after" in {k.lower() for k in response.headers}
        if status >= 500 and not deliberate:
            tally.server_errors += 1
            outcome.failures.append(
                f"gateway {label}: {status} {text[:200]!r} for {case.as_curl_command()[:300]}"
            )
            return
        # /metrics is the operator's scrape endpoint: its labels name the upstream servers by design; admin
        # replies (bearer token) name each replica's address for the operator (issue 13), public ones an id
        # an admin call with the token may name the model repository (where to put a model being added)
        secrets = [stack.admin_token] if headers else [stack.admin_token, str(stack.repo)]
        leaked = leaks(text, secrets) if case.path != "/metrics" else []
        if case.path.startswith("/v1/admin/") and status < 400:
            leaked = [kind for kind in leaked if kind != "address"]
        if leaked:
            tally.leaking += 1
            outcome.failures.append(f"gateway {label}: reply leaks {leaked}: {text[:200]!r}")
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:
            tally.violations += 1
            first = " | ".join(str(exc).strip().splitlines()[:6])
            outcome.failures.append(f"gateway {label}: schema violation: {first[:400]}")

    one()


def fuzz_gateway(stack: Stack, outcome: Outcome, examples: int) -> dict[str, Any]:
    """Every operation of the gateway's OpenAPI schema, ``examples`` generated cases each."""
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json")
    tally = _GatewayTally()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                outcome.failures.append(f"gateway schema: an operation cannot be fuzzed: {result.err()}")
                continue
            _fuzz_operation(result.ok(), stack, session, tally, outcome, examples)
        served = session.get(f"{stack.gateway_url}/v1/models", timeout=30).json()
    names = {m.get("name") for m in served.get("models", [])} if isinstance(served, dict) else set()
    if missing := sorted(set(MODELS) - names):
        outcome.failures.append(f"gateway: fuzzing took models away from the stack: {missing}")
    return {
        "operations": len(tally.per_operation),
        "cases": tally.tried,
        "server_errors_5xx": tally.server_errors,
        "schema_violations": tally.violations,
        "replies_leaking": tally.leaking,
        "per_operation": tally.per_operation,
        "models_missing_after": missing,
    }


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
_name = st.sampled_from(MODELS) | st.text(
    string.ascii_letters + string.digits + "._-%", min_size=1, max_size=12
)
_selector = st.sampled_from(["", "/versions/1", "/versions/2", "/labels/stable"]) | st.builds(
    lambda v: f"/versions/{v}", st.integers(min_value=-5, max_value=2**70)
)


@st.composite
def _body(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["instances", "inputs", "examples", "signature", "raw", "junk"]))
    if kind == "raw":
        return draw(st.binary(max_size=200))
    if kind == "junk":
        return json.dumps(draw(_json)).encode()
    body: dict[str, Any] = {kind: draw(_json)}
    if kind == "signature":
        body = {"signature_name": draw(st.text(max_size=10)), "instances": draw(_json)}
    return json.dumps(body).encode()


def fuzz_modelserver(stack: Stack, outcome: Outcome, examples: int) -> dict[str, Any]:
    """TF Serving's REST URLs with generated names, version selectors, verbs and bodies."""
    tried = server_errors = malformed = tracebacks = 0
    with httpx.Client(base_url=stack.rest_url, timeout=30) as client:

        @_settings(examples)
        @given(
            name=_name,
            selector=_selector,
            verb=st.sampled_from([":predict", ":classify", ":regress", "", "/metadata", ":explode"]),
            body=_body(),
            method=st.sampled_from(["POST", "GET", "PUT"]),
        )
        def one(name: str, selector: str, verb: str, body: bytes, method: str) -> None:
            nonlocal tried, server_errors, malformed, tracebacks
            path = f"/v1/models/{name}{selector}{verb}"
            tried += 1
            try:
                response = client.request(method, path, content=body if method != "GET" else None)
            except httpx.HTTPError as exc:
                server_errors += 1
                outcome.failures.append(f"modelserver {method} {path}: no reply ({type(exc).__name__})")
                return
            if response.status_code >= 500 and not _deliberate(response):
                # TF Serving answers 503 for an unavailable servable; any other 5xx is a server fault
                server_errors += 1
                outcome.failures.append(
                    f"modelserver {method} {path}: {response.status_code} {response.text[:200]!r}"
                )
                return
            try:
                reply = json.loads(response.content)
            except ValueError:
                reply = None
            well_formed = isinstance(reply, dict) and (
                (response.status_code < 400 and bool(reply))
                or (isinstance(reply.get("error"), str) and bool(reply["error"]))
            )
            if not well_formed:
                malformed += 1
                outcome.failures.append(
                    f"modelserver {method} {path}: malformed reply {response.text[:200]!r}"
                )
            leaked = leaks(response.text, [stack.admin_token])
            if "traceback" in leaked:
                tracebacks += 1
                outcome.failures.append(f"modelserver {method} {path}: traceback in reply")

        one()
    return {
        "cases": tried,
        "server_errors_5xx": server_errors,
        "malformed_replies": malformed,
        "replies_with_tracebacks": tracebacks,
    }


def _oip_reply_ok(response: Any) -> str:
    """'' when an OIP reply is acceptable: never a 5xx but 503 (not ready / nothing loaded), and every error
    the OIP body ``{"error": "<message>"}``."""
    status = response.status_code
    if status >= 500 and status != 503:
        return f"server error {status}"
    content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", "")
    if isinstance(content_type, list):  # schemathesis' replies hold lists of values
        content_type = content_type[0] if content_type else ""
    if status < 400 or str(content_type).startswith("application/octet-stream"):
        return ""
    try:
        reply = json.loads(response.content)
    except ValueError:
        return "error reply is not JSON"
    has_error = isinstance(reply, dict) and isinstance(reply.get("error"), str) and bool(reply["error"])
    if not has_error and "ready" not in (reply if isinstance(reply, dict) else {}):
        return "error reply without an 'error' message"
    return ""


def _with_model(pair: tuple[schemathesis.Case, str]) -> schemathesis.Case:
    case, name = pair
    case.path_parameters = {**(case.path_parameters or {}), "model_name": name}
    return case


@st.composite
def _binary_infer(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """An infer body with the binary data extension where sizes and the header length may lie."""
    model = draw(st.sampled_from(MODELS))
    datatype = draw(st.sampled_from(["FP32", "BYTES", "INT64", "BOOL", "FP16"]))
    shape = draw(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=4))
    size = draw(st.integers(min_value=0, max_value=600))
    document = {"inputs": [{"name": draw(st.sampled_from(["image", "text", "x", "longitude"])),
                            "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}],
                "parameters": {"binary_data_output": draw(st.booleans())}}  # fmt: skip
    header = json.dumps(document).encode()
    tail = draw(st.binary(max_size=600))
    length = draw(st.sampled_from([str(len(header)), str(len(header) + draw(st.integers(-50, 50))), "x", ""]))
    return f"/v2/models/{model}/infer", header + tail, {"Inference-Header-Content-Length": length}


def _fuzz_each(strategy: Any, examples: int, check: Any) -> None:
    @_settings(examples)
    @given(case=strategy)
    def one(case: schemathesis.Case) -> None:
        check(case)

    one()


def fuzz_oip(stack: Stack, outcome: Outcome, examples: int) -> dict[str, Any]:
    """Every operation of the OIP REST schema (``examples`` cases each, half on a real model) and as many
    binary-data bodies; replies are checked against the schema, for 5xx and for leaked tracebacks."""
    schema = schemathesis.openapi.from_path(str(OIP_SCHEMA))
    tried = server_errors = violations = tracebacks = 0
    per_operation: dict[str, int] = {}

    def judge(label: str, response: Any, case: schemathesis.Case | None) -> None:
        nonlocal server_errors, violations, tracebacks
        problem = _oip_reply_ok(response)
        if problem:
            server_errors += problem.startswith("server error")
            violations += not problem.startswith("server error")
            outcome.failures.append(f"modelserver OIP {label}: {problem}: {response.text[:200]!r}")
        if "traceback" in leaks(response.text, [stack.admin_token]):
            tracebacks += 1
            outcome.failures.append(f"modelserver OIP {label}: traceback in reply")
        if case is not None and not problem:
            try:
                case.validate_response(response, checks=CHECKS[1:])  # 5xx judged above (503 is documented)
            except Exception as exc:
                violations += 1
                first = " | ".join(str(exc).strip().splitlines()[:6])
                outcome.failures.append(f"modelserver OIP {label}: schema violation: {first[:400]}")

    with requests.Session() as session:

        def call(label: str, case: schemathesis.Case) -> None:
            nonlocal tried, server_errors
            tried += 1
            try:
                response = case.call(base_url=stack.rest_url, session=session, timeout=30)
            except requests.RequestException as exc:
                server_errors += 1
                outcome.failures.append(f"modelserver OIP {label}: no reply ({type(exc).__name__})")
                return
            per_operation[label] += 1
            judge(label, response, case)

        for result in schema.get_all_operations():
            if isinstance(result, Err):
                outcome.failures.append(f"OIP schema: an operation cannot be fuzzed: {result.err()}")
                continue
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            per_operation[label] = 0
            strategy = operation.as_strategy()
            if "{model_name}" in operation.path:
                strategy = st.one_of(strategy, st.tuples(strategy, st.sampled_from(MODELS)).map(_with_model))

            _fuzz_each(strategy, examples, lambda case, label=label: call(label, case))

    with httpx.Client(base_url=stack.rest_url, timeout=30) as client:

        @_settings(examples)
        @given(request=_binary_infer())
        def binary(request: tuple[str, bytes, dict[str, str]]) -> None:
            nonlocal tried, server_errors
            path, body, headers = request
            tried += 1
            try:
                response = client.post(path, content=body, headers={k: v for k, v in headers.items() if v})
            except httpx.HTTPError as exc:
                server_errors += 1
                outcome.failures.append(f"modelserver OIP binary {path}: no reply ({type(exc).__name__})")
                return
            judge(f"binary {path}", response, None)

        binary()
    return {
        "operations": len(per_operation),
        "cases": tried,
        "server_errors_5xx": server_errors,
        "malformed_replies": violations,
        "replies_with_tracebacks": tracebacks,
        "per_operation": per_operation,
    }


def run(stack: Stack, *, gateway_examples: int, modelserver_examples: int, oip_examples: int = 0) -> Outcome:
    outcome = Outcome("fuzz", "API fuzzing")
    gateway = fuzz_gateway(stack, outcome, gateway_examples)
    modelserver = fuzz_modelserver(stack, outcome, modelserver_examples)
    oip = fuzz_oip(stack, outcome, oip_examples or max(4, modelserver_examples // 8))
    alive = bool(stack.gateway and stack.gateway.alive() and stack.modelserver and stack.modelserver.alive())
    outcome.check(alive, "a service died while being fuzzed")
    outcome.figures = {
        "cases": gateway["cases"] + modelserver["cases"] + oip["cases"],
        "server_errors_5xx": gateway["server_errors_5xx"]
        + modelserver["server_errors_5xx"]
        + oip["server_errors_5xx"],
        "schema_violations": gateway["schema_violations"]
        + modelserver["malformed_replies"]
        + oip["malformed_replies"],
        "replies_leaking": gateway["replies_leaking"]
        + modelserver["replies_with_tracebacks"]
        + oip["replies_with_tracebacks"],
        "gateway": gateway,
        "modelserver": modelserver,
        "oip": oip,
    }
    return outcome.finish()
