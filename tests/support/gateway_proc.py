"""The real gateway process for end-to-end tests: ``python -m gateway`` on a free loopback port."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.procs import LOOPBACK, REPO_ROOT, ServerProcess, free_port

__all__ = ["Gateway", "start_gateway"]


@dataclass
class Gateway:
    process: ServerProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0)


def start_gateway(env: Mapping[str, str], log_path: Path) -> Gateway:
    """Start ``python -m gateway`` on a free loopback port; ready once /healthz answers."""
    port = free_port()
    full_env = {
        "PYTHONPATH": str(REPO_ROOT),
        "GATEWAY_HOST": LOOPBACK,
        "GATEWAY_PORT": str(port),
        "GATEWAY_LOG_LEVEL": "warning",
        **env,
    }

    def ready() -> bool:
        try:
            return httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    process = ServerProcess(
        [sys.executable, "-m", "gateway"],
        ports=[port],
        log_path=log_path,
        env=full_env,
        ready=ready,
        startup_timeout=30.0,
    )
    return Gateway(process.start(), port)
