"""The gRPC call admission (``modelserver.protocols.admission``) against a flood of message-less streams
spread over several connections, at a small scale: with a call cap of 20 (``--grpc_max_threads``), 120 idle
streams on 3 connections must neither refuse the neighbours' calls nor be held past the request-message
timeout. Without the admission grpc.aio counts a call from its HEADERS: the idle streams take every slot,
the neighbours are refused RESOURCE_EXHAUSTED and the streams are never ended."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.exhaustion import http2_idle_stream_flood
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
    flags = (f"--grpc_max_threads={CALL_CAP}", f"--grpc_request_message_timeout_seconds={MESSAGE_TIMEOUT}")
    try:
        with Stack.start(repo, work / "run", StackOptions(modelserver_flags=flags)) as running:
            yield running
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_idle_streams_over_the_call_cap_neither_refuse_neighbours_nor_stay(small_cap_stack: Stack) -> None:
    outcome = Outcome("exhaustion", "idle stream flood")
    figures = http2_idle_stream_flood(small_cap_stack, outcome, 3, 40, MESSAGE_TIMEOUT)
    found = figures["http2_idle_stream_flood"]
    assert found["neighbour_errors"] == 0, found
    assert found["streams_ended"] == {"4": 120}, found  # DEADLINE_EXCEEDED, none refused or evicted
    assert outcome.failures == [], (outcome.failures, figures)
