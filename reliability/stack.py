"""The stack under test: a real ``python -m modelserver`` and a real ``python -m gateway`` on loopback ports.

    with Stack.start(repo, workdir) as stack:
        httpx.post(f"{stack.gateway_url}/v1/models/text:classify", json={"texts": ["hi"]})
        stack.kill_modelserver(); stack.restart_modelserver()   # same ports: the gateway reconnects

Contract: the modelserver's ports are chosen once (bind port 0) and kept across ``restart_modelserver`` so
the gateway's channel finds the new process; both processes are ``devtools.servers``'; every address
is 127.0.0.1; ``stop()`` ends both processes (SIGTERM, then SIGKILL).
The model repository must hold ``models.config`` with absolute base paths (``devtools.exported``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.procs import LOOPBACK, ServerProcess, free_ports
from devtools.servers import Gateway, ModelServerHandle, modelserver_process, start_gateway
from devtools.waiting import poll_until

__all__ = ["Stack", "StackOptions", "extra_gateway", "gateway_env", "poll_until", "wait_until"]

# scenarios written before devtools/ call it by this name (bool: the caller decides what a timeout means)
wait_until = poll_until


def gateway_env(model_server: str, config: Path, workdir: Path, env: Mapping[str, str]) -> dict[str, str]:
    return {
        "GATEWAY_DEFAULT_MODEL_SERVER": model_server,
        "GATEWAY_MODEL_CONFIG_FILE": str(config),
        **env,
    }


@contextmanager
def extra_gateway(
    model_server: str, config: Path, workdir: Path, env: Mapping[str, str]
) -> Iterator[Gateway]:
    """One more gateway process (its own settings) beside a stack, stopped on exit."""
    gateway = start_gateway(gateway_env(model_server, config, workdir, env), workdir / "gateway.log")
    try:
        yield gateway
    finally:
        gateway.process.stop()


@dataclass
class StackOptions:
    """Knobs a scenario may turn: gateway environment (``GATEWAY_*``) and extra modelserver flags."""

    gateway_env: dict[str, str] = field(default_factory=dict)
    modelserver_flags: tuple[str, ...] = ()
    # run the modelserver under this uid (when we are root), so file permissions apply to it
    modelserver_user: int | None = None


class Stack:
    def __init__(self, repo: Path, workdir: Path, options: StackOptions | None = None) -> None:
        self.repo = repo
        self.config = repo / "models.config"
        # the model names in models.config, read once (scenarios hide the repository on purpose)
        self.models: list[str] = re.findall(r'name:\s*"([^"]+)"', self.config.read_text(encoding="utf-8"))
        self.workdir = workdir
        self.options = options or StackOptions()
        self.admin_token = secrets.token_hex(24)
        self.grpc_port, self.rest_port = free_ports(2)
        self.gateway_port = 0  # chosen when the gateway starts
        self.modelserver: ModelServerHandle | None = None
        self.gateway: ServerProcess | None = None
        self._restarts = 0

    @classmethod
    @contextmanager
    def start(cls, repo: Path, workdir: Path, options: StackOptions | None = None) -> Iterator[Stack]:
        stack = cls(repo, workdir, options)
        try:
            stack.start_modelserver()
            stack.start_gateway()
            yield stack
        finally:
            stack.stop()

    @property
    def gateway_url(self) -> str:
        return f"http://{LOOPBACK}:{self.gateway_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def start_modelserver(self) -> ModelServerHandle:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"modelserver-{self._restarts}.log"
        self._restarts += 1
        self.modelserver = modelserver_process(
            grpc_port=self.grpc_port,
            rest_port=self.rest_port,
            log_path=log,
            model_config_file=self.config,
            extra_flags=("--file_system_poll_wait_seconds=1", *self.options.modelserver_flags),
            startup_timeout=120,
            as_user=self.options.modelserver_user,
        )
        self.modelserver.start()
        return self.modelserver

    def start_gateway(self) -> ServerProcess:
        env = {"GATEWAY_ADMIN_TOKEN": self.admin_token, **self.options.gateway_env}
        gateway = start_gateway(
            gateway_env(self.grpc_target, self.config, self.workdir, env), self.workdir / "gateway.log"
        )
        self.gateway, self.gateway_port = gateway.process, gateway.port
        if not poll_until(lambda: httpx.get(f"{self.gateway_url}/readyz", timeout=5).status_code == 200, 60):
            raise RuntimeError(f"gateway never became ready:\n{self.gateway.log_text()}")
        return self.gateway

    def kill_modelserver(self) -> None:
        """SIGKILL: no chance to drain or say goodbye."""
        if self.modelserver is not None:
            self.modelserver.kill()

    def restart_modelserver(self) -> ModelServerHandle:
        self.kill_modelserver()
        return self.start_modelserver()

    def pids(self) -> dict[str, int]:
        found = {}
        for name, proc in (("modelserver", self.modelserver), ("gateway", self.gateway)):
            if proc is not None and proc.process is not None and proc.alive():
                found[name] = proc.process.pid
        return found

    def stop(self) -> None:
        for proc in (self.gateway, self.modelserver):
            if proc is not None:
                proc.stop()
