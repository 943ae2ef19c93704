"""devtools: waits that name what never happened, atomic writes, server processes that fail with their log."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from devtools.files import write_atomic
from devtools.procs import ServerFailed, ServerProcess, free_ports
from devtools.waiting import WaitTimeout, async_wait_until, poll_until, wait_until


def test_poll_until_counts_exceptions_as_not_yet() -> None:
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError
        return True

    assert poll_until(check, timeout=30, interval=0)
    assert len(calls) == 3
    assert not poll_until(lambda: False, timeout=0)


def test_wait_until_names_what_never_happened() -> None:
    with pytest.raises(WaitTimeout, match="waiting for the moon"):
        wait_until(lambda: False, "the moon", timeout=0)
    with pytest.raises(WaitTimeout, match="waiting for the sun"):
        asyncio.run(async_wait_until(lambda: False, "the sun", timeout=0))


def test_write_atomic_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    write_atomic(target, "old")
    write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_free_ports_are_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5


def test_a_process_that_exits_before_its_port_opens_fails_with_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "print('bad flag --nope'); raise SystemExit(2)"]
    server = ServerProcess(command, ports={"http": free_ports(1)[0]}, log_path=tmp_path / "log", name="x")
    with pytest.raises(
        ServerFailed, match=r"(?s)http port \d+ did not open \(exit code 2\).*bad flag --nope"
    ):
        server.start()
    assert not server.alive()
