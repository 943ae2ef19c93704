"""reliability.hotswap at small scale: versions swapped under load, no failed request, one version left."""

from __future__ import annotations

import pytest

from reliability import hotswap
from reliability.stack import Stack

pytestmark = pytest.mark.e2e


def test_swaps_under_load_fail_no_request(housing_stack: Stack) -> None:
    outcome = hotswap.run(housing_stack, swaps=2, warmup_swaps=1)
    assert outcome.figures["swaps"] == 2
    assert outcome.figures["failed_requests"] == 0, outcome.failures
    assert len(outcome.figures["versions_available_after"]) == 1
