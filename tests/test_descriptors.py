"""guard.descriptors: connection budgets that leave descriptors to the server, and accept() out of
descriptors handled as one line with the waiting connections shed (no traceback per retry)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from asyncio import trsock

import pytest

from guard.descriptors import RESERVED_DESCRIPTORS, AcceptGuard, connection_budget, open_file_limit


@pytest.mark.parametrize(
    ("requested", "ports", "limit", "budget"),
    [
        (1000, 2, 1 << 20, 1000),  # plenty of descriptors: the flag
        (1000, 2, 1024, (1024 - RESERVED_DESCRIPTORS) // 2),  # the reserve wins
        (0, 3, 4096, (4096 - RESERVED_DESCRIPTORS) // 3),  # 0 = as many as fit
        (1000, 2, 100, 16),  # never fewer than a few per port
    ],
)
def test_connection_budget_leaves_the_reserve(requested: int, ports: int, limit: int, budget: int) -> None:
    assert connection_budget(requested, ports, limit) == budget


def test_open_file_limit_is_at_least_the_soft_limit() -> None:
    import resource

    assert open_file_limit() >= resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_accept_out_of_descriptors_sheds_waiting_connections_and_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    listening.setblocking(False)
    clients = [socket.create_connection(listening.getsockname()) for _ in range(3)]

    async def main() -> AcceptGuard:
        loop = asyncio.get_running_loop()
        guard = AcceptGuard(loop)
        for _ in range(5):  # asyncio retries once a second; each retry goes to the guard
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                    "socket": trsock.TransportSocket(listening),
                }
            )
        return guard

    with caplog.at_level(logging.ERROR):
        guard = asyncio.run(main())
    assert guard.events == 5 and guard.shed == 3
    for client in clients:  # each waiting client sees its connection closed, not a hang
        client.settimeout(30)
        assert client.recv(1) == b""
        client.close()
    listening.close()
    lines = [r for r in caplog.records if r.name == "guard.descriptors"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "closed 3 waiting connections" in lines[0].getMessage()
