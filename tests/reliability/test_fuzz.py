"""reliability.fuzz at small scale: schemathesis over the gateway's OpenAPI schema, hypothesis over the
modelserver's REST API - no 5xx (but a deliberate 503), no schema violation, no internals in replies."""

from __future__ import annotations

from typing import Any

import pytest

from reliability import fuzz
from reliability.outcome import Outcome
from reliability.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fuzzed(stack: Stack) -> Outcome:
    return fuzz.run(stack, gateway_examples=4, modelserver_examples=60)


def test_every_gateway_operation_fuzzed(fuzzed: Outcome) -> None:
    gateway: dict[str, Any] = fuzzed.figures["gateway"]
    assert gateway["operations"] >= 10
    assert all(count > 0 for count in gateway["per_operation"].values()), gateway["per_operation"]


def test_fuzzing_leaves_every_model_served(fuzzed: Outcome) -> None:
    assert fuzzed.figures["gateway"]["models_missing_after"] == [], fuzzed.failures


def test_no_server_errors(fuzzed: Outcome) -> None:
    assert fuzzed.figures["server_errors_5xx"] == 0, fuzzed.failures


def test_no_schema_violations(fuzzed: Outcome) -> None:
    assert fuzzed.figures["schema_violations"] == 0, fuzzed.failures


def test_fuzzed_replies_leak_nothing(fuzzed: Outcome) -> None:
    assert fuzzed.figures["replies_leaking"] == 0, fuzzed.failures


def test_every_oip_operation_fuzzed(fuzzed: Outcome) -> None:
    oip: dict[str, Any] = fuzzed.figures["oip"]
    assert oip["operations"] == 9 and oip["cases"] > 9 * 4
    assert all(count > 0 for count in oip["per_operation"].values()), oip["per_operation"]
