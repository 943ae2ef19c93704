"""reliability.exhaustion and reliability.amplification on real processes, at a small scale: string tensors and tf.Example inputs refused
before they are decoded, HTTP/2 rapid reset, idle streams and pings, a connection flood, a dripped body and the
open-file limit - each with its neighbours served and the model server's RssAnon under the bound, on a stack
of its own (``exhaustion_stack``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reliability import amplification, exhaustion
from reliability.outcome import Outcome
from reliability.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLASSES: list[tuple[str, Callable[[Stack, Outcome], dict[str, Any]]]] = [
    ("string tensors", lambda s, o: amplification.string_tensors(s, o, amplification.TINY_STRINGS)),
    ("examples", amplification.examples),
    ("http2 rapid reset", lambda s, o: exhaustion.http2_rapid_reset(s, o, 2_000)),
    ("http2 idle streams", lambda s, o: exhaustion.http2_idle_streams(s, o, 2, 500)),
    ("http2 idle stream refill", lambda s, o: exhaustion.http2_idle_stream_refill(s, o, 10, 3.0)),
    ("http2 ping flood", lambda s, o: exhaustion.http2_ping_flood(s, o, 2_000)),
    ("connection flood", lambda s, o: exhaustion.connection_flood(s, o, 200)),
    ("dripped body", exhaustion.dripped_body),
    ("descriptor exhaustion", exhaustion.descriptor_exhaustion),  # last: the open-file limit
]


@pytest.mark.parametrize(("name", "attack"), CLASSES, ids=[name for name, _ in CLASSES])
def test_exhaustion_class_is_refused_with_bounded_cost(
    exhaustion_stack: Stack, name: str, attack: Callable[[Stack, Outcome], dict[str, Any]]
) -> None:
    outcome = Outcome("exhaustion", name)
    figures = attack(exhaustion_stack, outcome)
    assert outcome.failures == [], (outcome.failures, figures)
