"""API fuzzing against the real processes: schemathesis generates requests from the gateway's own
``/openapi.json`` (every operation, valid and invalid data) and checks each reply against the schema;
hypothesis generates modelserver REST calls (names, versions, labels, verbs, arbitrary JSON bodies).

Figures: cases tried, server errors (5xx other than a deliberate 503 with Retry-After), schema violations.
"""

from __future__ import annotations

import json
import string
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

__all__ = ["fuzz_gateway", "fuzz_modelserver", "run"]

MODELS = ("fashion", "text", "housing")
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
    if "{name}" in operation.path:  # half the cases on a real model, to get past "no such model"
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
        # /metrics is the operator's scrape endpoint: its labels name the upstream servers by design
        leaked = leaks(text, [stack.admin_token, str(stack.repo)]) if case.path != "/metrics" else []
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
    return {
        "operations": len(tally.per_operation),
        "cases": tally.tried,
        "server_errors_5xx": tally.server_errors,
        "schema_violations": tally.violations,
        "replies_leaking": tally.leaking,
        "per_operation": tally.per_operation,
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


def run(stack: Stack, *, gateway_examples: int, modelserver_examples: int) -> Outcome:
    outcome = Outcome("fuzz", "API fuzzing")
    gateway = fuzz_gateway(stack, outcome, gateway_examples)
    modelserver = fuzz_modelserver(stack, outcome, modelserver_examples)
    alive = bool(stack.gateway and stack.gateway.alive() and stack.modelserver and stack.modelserver.alive())
    outcome.check(alive, "a service died while being fuzzed")
    outcome.figures = {
        "cases": gateway["cases"] + modelserver["cases"],
        "server_errors_5xx": gateway["server_errors_5xx"] + modelserver["server_errors_5xx"],
        "schema_violations": gateway["schema_violations"] + modelserver["malformed_replies"],
        "replies_leaking": gateway["replies_leaking"] + modelserver["replies_with_tracebacks"],
        "gateway": gateway,
        "modelserver": modelserver,
    }
    return outcome.finish()
