"""Which version answers a request that names no version, and so which labels may keep their versions loaded
("pinned means served", docs/architecture.md: "Replicas").

TF Serving answers a request without a version with the highest AVAILABLE version of the model. So for the
pinned version to answer every such request - on every replica, through the gateway and for clients that call
the model servers directly - no version above it may be loaded: a label at or below the answering version is
loaded and served, one above it is not (it stays in the desired state's header only). A running canary is the
one exception: the gateway names the version of every request it splits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf import text_format

from tfs_protos.tensorflow_serving.config import model_server_config_pb2

if TYPE_CHECKING:
    from gateway.rollout.desired import ModelState

__all__ = ["CANARY_LABEL", "answering_version", "live_labels"]

CANARY_LABEL = "canary"


def answering_version(state: ModelState, known: list[int] | None = None) -> int | None:
    """What answers requests naming no version when no canary runs: the pin, else the top of the operator's
    own policy (``known``: the versions on disk; None when unknown)."""
    if state.pinned is not None:
        return state.pinned
    entry = model_server_config_pb2.ModelConfig()
    text_format.Parse(state.base, entry)
    policy = entry.model_version_policy
    if policy.HasField("specific") and policy.specific.versions:
        return int(max(policy.specific.versions))
    return max(known) if known else None


def live_labels(state: ModelState, known: list[int] | None = None) -> dict[str, int]:
    """The labels loaded and served: those at or below ``answering_version``, and the canary's while it starts
    or runs. Others (a rolled-back canary, a state from before this rule) are neither loaded nor rendered."""
    head, canary = answering_version(state, known), state.canary
    running = canary.version if canary is not None and canary.status in ("starting", "running") else None
    return {
        label: version
        for label, version in state.labels.items()
        if head is None or version <= head or (label == CANARY_LABEL and version == running)
    }
