"""The gRPC call admission (``modelserver.protocols.admission``) against a flood of message-less streams
spread over several connections, at a small scale: with a call cap of 20 (``--grpc_max_threads``), 90 idle
streams on 3 connections (within 64 per connection) must neither refuse the neighbours' calls nor be held
past the request-message timeout. Without the admission grpc.aio counts a call from its HEADERS: the idle
streams take every slot, the neighbours are refused RESOURCE_EXHAUSTED and the streams are never ended.
Health Watch streams (long-lived by design) past the server's cap of 100 are refused RESOURCE_EXHAUSTED,
the neighbours served."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.exhaustion import MAX_WATCHES, health_watch_flood, http2_idle_stream_flood
from reliability.outcome import Outcome
from reliability.repo import copy_repo
from reliability.stack import Stack, StackOptions
from reliability.suite import workdir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CALL_CAP = 20
MESSAGE_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def small_cap_stack(model_repo: Path) -> Iterator[Stack]:
    work = workdir("tfserve-reliability-test-")
    repo = copy_repo(model_repo, work / "repo", ("text", "housing"))  # the neighbours' models
    flags = (
        f"--grpc_max_threads={CALL_CAP}",
        f"--grpc_request_message_timeout_seconds={MESSAGE_TIMEOUT}",
        "--enable_grpc_healthcheck_service",  # the Watch flood
    )
    try:
        with Stack.start(repo, work / "run", StackOptions(modelserver_flags=flags)) as running:
            yield running
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_idle_streams_over_the_call_cap_neither_refuse_neighbours_nor_stay(small_cap_stack: Stack) -> None:
    outcome = Outcome("exhaustion", "idle stream flood")
    figures = http2_idle_stream_flood(small_cap_stack, outcome, 3, 30, MESSAGE_TIMEOUT)
    found = figures["http2_idle_stream_flood"]
    assert found["neighbour_errors"] == 0, found
    assert found["streams_ended"] == {"4": 90}, found  # DEADLINE_EXCEEDED, none refused or evicted
    assert outcome.failures == [], (outcome.failures, figures)


def test_watch_streams_past_their_cap_are_refused_and_neighbours_served(small_cap_stack: Stack) -> None:
    outcome = Outcome("exhaustion", "health Watch flood")
    figures = health_watch_flood(small_cap_stack, outcome, MAX_WATCHES + 50)
    found = figures["health_watch_flood"]
    assert found["watches_open"] == MAX_WATCHES and found["watches_ended"] == {"RESOURCE_EXHAUSTED": 50}, (
        found
    )
    assert found["neighbour_errors"] == 0, found
    assert outcome.failures == [], (outcome.failures, figures)
