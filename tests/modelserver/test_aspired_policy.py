"""modelserver.lifecycle.aspired_version_policy: the next action of each policy, as a table."""

from __future__ import annotations

import pytest

from modelserver.lifecycle.aspired_version_policy import (
    Action,
    AvailabilityPreserving,
    ResourcePreserving,
    VersionView,
)
from modelserver.lifecycle.harness import HarnessState

S = HarnessState
LOAD, UNLOAD = Action.LOAD, Action.UNLOAD


def v(version: int, aspired: bool, state: HarnessState | None, wants_load: bool = False) -> VersionView:
    return VersionView(version, aspired, state, wants_load)


SWAP_START = [v(1, False, S.READY), v(2, True, None, True)]
SWAP_LOADED = [v(1, False, S.READY), v(2, True, S.READY)]
SWAP_DRAINING = [v(1, False, S.QUIESCING), v(2, True, None, True)]
NEW_FAILED = [v(1, False, S.READY), v(2, True, S.ERROR)]
REMOVED = [v(1, False, S.READY), v(2, False, S.READY)]
TWO_NEW = [v(1, True, None, True), v(2, True, None, True)]
SETTLED = [v(1, False, S.DISABLED), v(2, True, S.READY)]


@pytest.mark.parametrize(
    ("versions", "availability", "resource"),
    [
        pytest.param(SWAP_START, (LOAD, 2), (UNLOAD, 1), id="swap-start"),
        pytest.param(SWAP_LOADED, (UNLOAD, 1), (UNLOAD, 1), id="swap-loaded"),
        pytest.param(SWAP_DRAINING, (LOAD, 2), None, id="swap-draining"),
        pytest.param(NEW_FAILED, None, (UNLOAD, 1), id="new-version-failed"),
        pytest.param(REMOVED, (UNLOAD, 1), (UNLOAD, 1), id="model-removed"),
        pytest.param(TWO_NEW, (LOAD, 2), (LOAD, 2), id="highest-first"),
        pytest.param(SETTLED, None, None, id="settled"),
        pytest.param([], None, None, id="nothing"),
    ],
)
def test_next_action(
    versions: list[VersionView], availability: tuple[Action, int] | None, resource: tuple[Action, int] | None
) -> None:
    assert AvailabilityPreserving().next_action(versions) == availability
    assert ResourcePreserving().next_action(versions) == resource
