"""reliability.versions on the real modelserver: bad versions are never served, are reported in status,
and the previous version keeps answering every request."""

from __future__ import annotations

from typing import Any

import pytest

from reliability import versions
from reliability.outcome import Outcome
from reliability.stack import Stack

pytestmark = pytest.mark.e2e

KNOWN_BUGS: dict[str, str] = {}  # case name -> reason, while a bug found here is being fixed


@pytest.fixture(scope="module")
def outcome(housing_stack: Stack, permission_cases: bool) -> Outcome:
    return versions.run(housing_stack, non_root=permission_cases)


def _row(outcome: Outcome, name: str) -> dict[str, Any]:
    rows = [c for c in outcome.cases if c["case"] == name]
    if not rows:
        pytest.skip(f"{name}: not run here ({outcome.notes})")
    return rows[0]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            id=n,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n])] if n in KNOWN_BUGS else [],
        )
        for n, _ in versions.CASES
    ],
)
def test_bad_version_never_served_and_reported(outcome: Outcome, name: str) -> None:
    row = _row(outcome, name)
    assert row["state"] == "END" and row["error"], row
    assert row["available"] == [row["answered_by"]] and row["answered_by"] < row["version"], row


def test_half_copied_version_waits_for_its_copy(outcome: Outcome) -> None:
    assert outcome.figures["half_copy_ignored_then_loaded"], outcome.failures


def test_no_request_failed_meanwhile(outcome: Outcome) -> None:
    assert outcome.figures["failed_requests"] == 0, outcome.failures
    assert outcome.figures["requests_during"]["requests"] > 0
