"""reliability.attack on real processes, at a small scale: the classes of issue 17 (control plane, declared
shapes, decompression bombs, header and body sizes, slow clients, log amplification, browser headers) each
end in a 4xx / gRPC refusal with bounded memory, no traceback, and the services serving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reliability import attack
from reliability.outcome import Outcome
from reliability.stack import Stack

pytestmark = pytest.mark.e2e

STEPS: list[tuple[str, Callable[[Stack, Outcome], dict[str, Any]]]] = [
    ("grpc tensors", lambda s, o: attack.grpc_tensors(s, o, 32 << 20)),
    ("decompression bomb", lambda s, o: attack.decompression_bomb(s, o, 128 << 20)),
    ("header limits", lambda s, o: attack.header_limits(s, o, 1 << 20)),
    ("streamed body", lambda s, o: attack.streamed_body(s, o, 16 << 20)),
    ("slow clients", attack.slow_clients),
    ("log amplification", lambda s, o: attack.log_amplification(s, o, 20)),
    ("browser", attack.browser),
    ("ports guidance", lambda s, o: attack.ports_guidance(o, attack.REPO_ROOT)),
    (
        "control plane",
        attack.control_plane,
    ),  # last: it empties the server and waits for the gateway to heal it
]


@pytest.mark.parametrize(("name", "step"), STEPS, ids=[s[0] for s in STEPS])
def test_attack_class_is_refused_with_bounded_cost(
    stack: Stack, name: str, step: Callable[[Stack, Outcome], dict[str, Any]]
) -> None:
    outcome = Outcome("attack", name)
    step(stack, outcome)
    assert outcome.failures == []
    assert stack.gateway is not None and stack.gateway.alive()
    assert stack.modelserver is not None and stack.modelserver.alive()
