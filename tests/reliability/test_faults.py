"""reliability.faults: SIGKILL under load, a slow model server, the models directory briefly unavailable -
against the real processes (housing model only, to keep restarts short)."""

from __future__ import annotations

import pytest

from reliability import faults
from reliability.outcome import Outcome
from reliability.payloads import HOUSING_RECORD, Request
from reliability.replies import leaks
from reliability.stack import Stack

pytestmark = pytest.mark.e2e

HOUSING = [
    Request("housing:regress", "/v1/models/housing:regress", json={"records": [HOUSING_RECORD]}),
    Request("housing:predict", "/v1/models/housing:predict", json={"records": [HOUSING_RECORD] * 2}),
]


@pytest.fixture(scope="module")
def slow(housing_stack: Stack) -> dict[str, object]:
    outcome = Outcome("faults", "slow")
    figures = faults.slow_model_server(housing_stack, outcome, HOUSING)
    figures["failures"] = [f for f in outcome.failures if "leaks" not in f]
    return figures


@pytest.fixture(scope="module")
def killed(housing_stack: Stack) -> dict[str, object]:
    outcome = Outcome("faults", "kill")
    figures = faults.kill_under_load(housing_stack, outcome, HOUSING, down_seconds=2.0)
    figures["failures"] = [f for f in outcome.failures if "leaks" not in f]
    return figures


def test_slow_model_server_hits_the_deadline(slow: dict[str, object]) -> None:
    assert slow["failures"] == []
    assert set(slow["statuses"]) == {504}  # type: ignore[call-overload]


def test_sigkill_gives_503_then_recovers(killed: dict[str, object]) -> None:
    assert killed["failures"] == []
    assert killed["recovery_after_restart_s"] is not None  # recorded, not bounded: make reliability judges it


def test_upstream_errors_leak_no_address(slow: dict[str, object], killed: dict[str, object]) -> None:
    assert not leaks(str(slow["message"]))
    assert not leaks(str(killed["down_reply"]["message"]))  # type: ignore[index]


def test_unreadable_models_dir_unloads_nothing(housing_stack: Stack, permission_cases: bool) -> None:
    if not permission_cases:
        pytest.skip("cannot drop privileges here")
    outcome = Outcome("faults", "dir")
    faults.models_dir_unavailable(housing_stack, outcome, True, only=("a model's base path unreadable",))
    assert outcome.failures == []
