"""reliability.hostile on real processes: every hostile upload gets its 4xx with a message, nothing leaks,
both services stay up with bounded memory."""

from __future__ import annotations

import pytest

from reliability.hostile import CASES, RSS_BOUND_BYTES, Case, try_case, try_declared_too_large
from reliability.probes import usage
from reliability.stack import Stack
from reliability.suite import MAX_UPLOAD_BYTES

pytestmark = pytest.mark.e2e

KNOWN_BUGS: dict[str, str] = {}  # case name -> reason, while a bug found here is being fixed


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case.name])] if case.name in KNOWN_BUGS else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.fixture(scope="module")
def rss_before(stack: Stack) -> dict[str, int]:
    return {name: usage(pid).rss_bytes for name, pid in stack.pids().items()}


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_hostile_upload_gets_a_clear_4xx(stack: Stack, rss_before: dict[str, int], case: Case) -> None:
    row = try_case(stack, case, MAX_UPLOAD_BYTES)
    assert row["ok"], row


def test_declared_huge_body_refused_before_reading(stack: Stack) -> None:
    row = try_declared_too_large(stack)
    assert row["ok"], row


def test_services_survive_with_bounded_memory(stack: Stack, rss_before: dict[str, int]) -> None:
    assert stack.gateway is not None and stack.gateway.alive()
    assert stack.modelserver is not None and stack.modelserver.alive()
    for name, pid in stack.pids().items():
        grown = usage(pid).rss_bytes - rss_before[name]
        assert grown <= RSS_BOUND_BYTES, f"{name} RSS grew {grown / 2**20:.0f} MiB"
