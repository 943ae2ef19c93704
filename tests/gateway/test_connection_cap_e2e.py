"""The gateway's connection cap end to end (a real ``python -m gateway``): past ``GATEWAY_MAX_CONNECTIONS``
open connections a new one gets 503 and is closed at once, while a client connected before the flood keeps
being served on its connection, and new connections are served again once the flood is gone."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from devtools.procs import LOOPBACK, free_port
from devtools.servers import start_gateway
from reliability.gateway_attack import new_connection_status
from reliability.stack import wait_until

pytestmark = pytest.mark.e2e
CAP = 8


def _status(port: int) -> int:
    return new_connection_status(LOOPBACK, port)


def test_a_connection_flood_is_refused_while_connected_clients_are_served(tmp_path: Path) -> None:
    env = {
        "GATEWAY_MODEL_CONFIG_FILE": "",
        "GATEWAY_MODELS": "half",
        "GATEWAY_DEFAULT_MODEL_SERVER": f"{LOOPBACK}:{free_port()}",  # nothing listens: not needed
        "GATEWAY_MAX_CONNECTIONS": str(CAP),
    }
    gateway = start_gateway(env, tmp_path / "gateway.log")
    flood: list[socket.socket] = []
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as neighbour:
            assert neighbour.get("/healthz").status_code == 200  # connected before the flood
            for _ in range(3 * CAP):
                flood.append(socket.create_connection((LOOPBACK, gateway.port), timeout=30))
            refused = wait_until(lambda: _status(gateway.port) == 503, 60, interval=0.1)  # hang guard
            assert refused, "no new connection was refused past the cap"
            assert neighbour.get("/healthz").status_code == 200  # its keep-alive connection is still served
            for sock in flood:
                sock.close()
            flood.clear()
            assert wait_until(lambda: _status(gateway.port) == 200, 60, interval=0.1)
            assert neighbour.get("/healthz").status_code == 200
    finally:
        for sock in flood:
            sock.close()
        gateway.process.stop()
    log = (tmp_path / "gateway.log").read_text(encoding="utf-8")
    assert "Traceback" not in log
