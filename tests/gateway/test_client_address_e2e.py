"""Who the client is. End to end (a real ``python -m gateway``): ``X-Forwarded-For`` names the client only
when the TCP peer is one of ``GATEWAY_TRUSTED_PROXIES`` (none by default), so a client cannot escape the rate
limit by naming a new address in every request; in process: nor by taking a new IPv6 address of its /64."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.procs import LOOPBACK, free_port
from devtools.servers import Gateway, start_gateway
from gateway.middleware.limits import RateLimit, client_of
from gateway.settings import Settings

pytestmark = pytest.mark.e2e
REQUESTS = 6
BURST = 2


@pytest.fixture
def gateway_with(tmp_path: Path) -> Iterator[object]:
    started: list[Gateway] = []

    def start(**env: str) -> Gateway:
        base = {
            "GATEWAY_MODEL_CONFIG_FILE": "",
            "GATEWAY_MODELS": "half",
            "GATEWAY_DEFAULT_MODEL_SERVER": f"{LOOPBACK}:{free_port()}",  # nothing listens: not needed
            "GATEWAY_RATE_LIMIT_PER_SECOND": "0.001",  # no token comes back during the test
            "GATEWAY_RATE_LIMIT_BURST": str(BURST),
        }
        gateway = start_gateway({**base, **env}, tmp_path / f"gateway-{len(started)}.log")
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.process.stop()


def _limited(gateway: Gateway, forwarded: list[str]) -> int:
    with gateway.client() as client:
        replies = [client.get("/v1/models/nothing", headers={"X-Forwarded-For": f}) for f in forwarded]
    assert {r.status_code for r in replies} <= {404, 429}
    return sum(r.status_code == 429 for r in replies)


def test_a_new_forwarded_address_per_request_is_still_one_client_by_default(gateway_with: object) -> None:
    gateway = gateway_with()  # type: ignore[operator]
    assert _limited(gateway, [f"203.0.113.{i}" for i in range(REQUESTS)]) == REQUESTS - BURST


def test_a_configured_proxy_names_the_client(gateway_with: object) -> None:
    gateway = gateway_with(GATEWAY_TRUSTED_PROXIES="127.0.0.1")  # type: ignore[operator]
    assert _limited(gateway, [f"203.0.113.{i}" for i in range(REQUESTS)]) == 0
    assert _limited(gateway, ["198.51.100.7"] * REQUESTS) == REQUESTS - BURST  # one client behind it


@pytest.mark.parametrize("value", ["*", "proxy.example", "10.0.0.0/40"])
def test_trusted_proxies_must_be_addresses_or_networks(value: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_TRUSTED_PROXIES"):
        Settings(model_config_file=None, trusted_proxies=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "client"),
    [
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:7", "2001:db8::/64"),  # another address of the same network: the same client
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("192.0.2.1", "192.0.2.1"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_client_is_its_64_network(host: str, client: str) -> None:
    assert client_of(host) == client


def test_new_ipv6_addresses_of_one_network_share_a_bucket() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limit = RateLimit(app, rate=0.001, burst=BURST)

    async def statuses() -> list[int]:
        found = []
        for i in range(REQUESTS):
            sent: list[int] = []

            async def send(message: Any, sent: list[int] = sent) -> None:
                if message["type"] == "http.response.start":
                    sent.append(message["status"])

            scope = {"type": "http", "path": "/v1/models", "client": (f"2001:db8::{i + 1:x}", 1)}
            await limit(scope, None, send)  # type: ignore[arg-type]
            found += sent
        return found

    assert asyncio.run(statuses()).count(429) == REQUESTS - BURST
