"""End to end (one model server, one gateway): the canary's latency rule cannot be triggered by a client that
picks the canary side (``X-Canary-Key`` is public) and sends expensive requests, and still rolls back a
genuinely slow candidate.

``half`` versions sleep in TensorFlow (``tiny_models.half_plus_two(delay=...)``, no CPU burnt): 1 and 2 cost the
same per row, 3 is slow on every call. Clients are named by ``X-Forwarded-For`` through a trusted proxy
(127.0.0.1), as behind a real one. The margins are tenfold sleeps, and the waits are conditions with
generous deadlines (hang guards)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devtools.procs import ServerProcess
from devtools.servers import Gateway
from devtools.tiny_models import half_plus_two
from gateway.rollout.traffic import in_canary
from tests.gateway.half_stack import admin, serving, wait_for, write_config

pytestmark = pytest.mark.e2e
DEADLINE_S = 120.0
NEIGHBOURS = [f"198.51.100.{i}" for i in range(5)]
ATTACKER = "203.0.113.66"
ATTACK_ROWS = 32
ATTACK_KEY = next(k for k in (f"pick-{i}" for i in range(1000)) if in_canary("half", k, 50))


@dataclass
class Stack:
    server: ServerProcess
    gateway: Gateway


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("canary_rule")
    half_plus_two(root / "half" / "1", delay=(0.0, 0.01))
    half_plus_two(root / "half" / "2", delay=(0.0, 0.01))  # the same cost per row as 1
    half_plus_two(root / "half" / "3", delay=(0.1, 0.01))  # slow on every call
    config = write_config(root / "models.config", root / "half")
    env = {"GATEWAY_TRUSTED_PROXIES": "127.0.0.1", "GATEWAY_MAX_FILES": str(ATTACK_ROWS)}
    with serving(config, root, replicas=1, gateways="a", env=env) as started:
        yield Stack(started.replicas[0], started.gateways[0])


def _wait(what: str, check: Callable[[], Any]) -> Any:
    return wait_for(what, check, DEADLINE_S, pause=0)


def _predict(s: Stack, client: str, rows: int = 1, key: str | None = None) -> int:
    headers = {"X-Forwarded-For": client, **({"X-Canary-Key": key} if key else {})}
    body = {"records": [{"x": 2.0}] * rows}
    reply = httpx.post(f"{s.gateway.url}/v1/models/half:regress", json=body, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return int(reply.json()["version"])


def _canary(s: Stack) -> dict[str, Any]:
    reply = admin(s.gateway, "GET", "")
    assert reply.status_code == 200, reply.text
    return reply.json()["canary"] or {}


def _start_canary(s: Stack, version: int) -> None:
    if _canary(s):
        assert admin(s.gateway, "DELETE", "/canary").status_code == 200
    started = admin(s.gateway, "PUT", "/canary", {"version": version, "weight": 50})
    assert started.status_code == 200, started.text
    _wait("both versions answer", lambda: {_predict(s, NEIGHBOURS[0]) for _ in range(10)} == {1, version})


def _neighbours(s: Stack, pool: ThreadPoolExecutor, rounds: int) -> set[int]:
    jobs = [pool.submit(_predict, s, client) for _ in range(rounds) for client in NEIGHBOURS]
    return {job.result() for job in jobs}


def test_one_client_sending_expensive_requests_to_the_canary_does_not_roll_it_back(stack: Stack) -> None:
    _start_canary(stack, 2)
    with ThreadPoolExecutor(5) as pool, ThreadPoolExecutor(2) as attacker:
        attack = [attacker.submit(_predict, stack, ATTACKER, ATTACK_ROWS, ATTACK_KEY) for _ in range(12)]
        while not all(job.done() for job in attack):
            _neighbours(stack, pool, 2)
        # the key picked the canary side (the stable version answers when the candidate runs out of time)
        assert 2 in {job.result() for job in attack}

        def judged() -> dict[str, Any] | None:
            _neighbours(stack, pool, 4)
            window = _canary(stack).get("window") or {}
            enough = min(window.get("canary_requests", 0), window.get("stable_requests", 0)) >= 120
            return window if enough and window.get("canary_clients", 0) == len(NEIGHBOURS) + 1 else None

        window = _wait("120 requests on each side from every client", judged)
    canary = _canary(stack)
    assert canary["status"] == "running" and canary["weight"] == 50, canary
    # the attacker counted (6 canary clients), at most itself regressed; whether the old rule (p99 of all
    # requests > stable's x 2 + 50 ms) would have fired depends on the machine's load, so it is not asserted
    # here (make reliability reports it: canary_old_rule_fires)
    assert window["regressed_clients"] <= 1, window


def test_a_genuinely_slow_canary_is_rolled_back_for_latency(stack: Stack) -> None:
    _start_canary(stack, 3)
    with ThreadPoolExecutor(5) as pool:

        def rolled_back() -> bool:
            _neighbours(stack, pool, 4)
            return _canary(stack).get("status") == "rolled_back"

        _wait("the automatic rollback of the slow version", rolled_back)
    canary = _canary(stack)
    assert canary["weight"] == 0 and canary["reason"] == "latency", canary
    event = next(
        e for e in reversed(admin(stack.gateway, "GET", "").json()["events"]) if "regressed_clients" in e
    )
    assert event["regressed_clients"] >= 3 and event["canary_clients"] == len(NEIGHBOURS), event
