"""Aspired-version policies: in which order the manager loads new aspired versions and unloads the versions
no longer aspired (TF Serving's ``core/aspired_version_policy.h`` and its two implementations).

Contract: ``next_action(versions)`` is a pure function of one model's versions and returns the one action to
take next, or None when nothing is to be done now. The manager applies the action and asks again until
None; when the policy waits (None) while a version still wants to load and some unload is in flight, the
manager waits for those unloads to finish and asks again. Chosen with ``--aspired_version_policy``:

- ``availability_preserving`` (default, TF Serving's ``AvailabilityPreservingPolicy``): load new aspired
  versions (highest first) *before* unloading the old ones, and unload an un-aspired version only once some
  aspired version is READY (or the model has no aspired version left). Never a moment without a version;
  needs RAM for old and new at once.
- ``resource_preserving`` (``ResourcePreservingPolicy``): unload every un-aspired version first and load
  only once they are gone. Fits a tight ``--total_model_memory_limit_bytes`` (one version's RAM at a
  time); requests get UNAVAILABLE between the unload and the load.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from modelserver.lifecycle.harness import UNLOADING_STATES, HarnessState

__all__ = [
    "POLICIES",
    "Action",
    "AspiredVersionPolicy",
    "AvailabilityPreserving",
    "PolicyName",
    "ResourcePreserving",
    "VersionView",
]


class Action(enum.Enum):
    LOAD = "load"
    UNLOAD = "unload"


@dataclass(frozen=True)
class VersionView:
    """What a policy sees of one version: aspired or not, its harness state (None: never seen), and whether
    it wants a load (aspired, and new, or unloaded earlier, or its failure may be retried)."""

    version: int
    aspired: bool
    state: HarnessState | None
    wants_load: bool = False


class AspiredVersionPolicy(Protocol):
    def next_action(self, versions: Sequence[VersionView]) -> tuple[Action, int] | None: ...


def _highest_wanting(versions: Sequence[VersionView]) -> tuple[Action, int] | None:
    wanting = [v.version for v in versions if v.wants_load]
    return (Action.LOAD, max(wanting)) if wanting else None


def _lowest_unaspired_ready(versions: Sequence[VersionView]) -> tuple[Action, int] | None:
    ready = [v.version for v in versions if not v.aspired and v.state is HarnessState.READY]
    return (Action.UNLOAD, min(ready)) if ready else None


class AvailabilityPreserving:
    """Load first; unload the old only once an aspired version serves (or none is aspired any more)."""

    def next_action(self, versions: Sequence[VersionView]) -> tuple[Action, int] | None:
        load = _highest_wanting(versions)
        if load is not None:
            return load
        aspired = [v for v in versions if v.aspired]
        if not aspired or any(v.state is HarnessState.READY for v in aspired):
            return _lowest_unaspired_ready(versions)
        return None


class ResourcePreserving:
    """Unload first; load only once no un-aspired version holds resources."""

    def next_action(self, versions: Sequence[VersionView]) -> tuple[Action, int] | None:
        unload = _lowest_unaspired_ready(versions)
        if unload is not None:
            return unload
        if any(not v.aspired and v.state in UNLOADING_STATES for v in versions):
            return None  # the manager waits for these unloads, then asks again
        return _highest_wanting(versions)


PolicyName = Literal["availability_preserving", "resource_preserving"]
POLICIES: dict[str, type[AvailabilityPreserving] | type[ResourcePreserving]] = {
    "availability_preserving": AvailabilityPreserving,
    "resource_preserving": ResourcePreserving,
}
