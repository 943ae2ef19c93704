"""The stack's own processes on loopback ports: ``python -m modelserver`` and ``python -m gateway``.

    with start_modelserver(model_name="half", model_base_path=base) as server:
        grpc.insecure_channel(server.grpc_target); httpx.get(f"{server.url}/v1/models/half")
    gateway = start_gateway({"GATEWAY_DEFAULT_MODEL_SERVER": server.grpc_target}, log_path)

Contract: ``start_*`` return once the process serves (the modelserver opens its ports only after the
configured models are loaded; the gateway once /healthz answers); ``modelserver_process`` builds one on
given ports without starting it (reliability/ restarts a modelserver on the same ports). Every address is
127.0.0.1; the caller stops what it started (context manager or ``stop()``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.procs import LOOPBACK, REPO_ROOT, ServerProcess, free_port, free_ports

__all__ = ["Gateway", "ModelServerHandle", "modelserver_process", "start_gateway", "start_modelserver"]

# Quiet TensorFlow start-up; never touch a GPU; the modelserver binds loopback only.
MODELSERVER_ENV = {
    "MODELSERVER_BIND_HOST": LOOPBACK,
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
    "PYTHONPATH": str(REPO_ROOT),
}


class ModelServerHandle(ServerProcess):
    """A ``python -m modelserver`` with its ports."""

    def __init__(
        self, command: Sequence[str], *, grpc_port: int, rest_port: int | None, **kwargs: object
    ) -> None:
        ports = {"grpc": grpc_port, **({"rest": rest_port} if rest_port else {})}
        super().__init__(command, ports=ports, name="modelserver", **kwargs)  # type: ignore[arg-type]
        self.grpc_port = grpc_port
        self.rest_port = rest_port

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def url(self) -> str:
        if not self.rest_port:
            raise RuntimeError("this modelserver was started without REST (rest=False)")
        return f"http://{LOOPBACK}:{self.rest_port}"


def modelserver_process(
    *,
    grpc_port: int,
    rest_port: int | None,
    log_path: Path,
    model_config_file: Path | None = None,
    model_name: str | None = None,
    model_base_path: Path | None = None,
    extra_flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 90.0,
    as_user: int | None = None,
) -> ModelServerHandle:
    """A modelserver on the given ports, not yet started; ``as_user`` runs it under that uid (setpriv)."""
    command = [sys.executable, "-m", "modelserver", f"--port={grpc_port}"]
    if rest_port:
        command.append(f"--rest_api_port={rest_port}")
    if model_config_file is not None:
        command.append(f"--model_config_file={model_config_file}")
    if model_base_path is not None:
        command.append(f"--model_base_path={model_base_path}")
        command.append(f"--model_name={model_name or 'default'}")
    command.extend(extra_flags)
    if as_user is not None:
        command = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *command]
    return ModelServerHandle(
        command,
        grpc_port=grpc_port,
        rest_port=rest_port,
        log_path=log_path,
        env={**MODELSERVER_ENV, **(env or {})},
        startup_timeout=startup_timeout,
    )


def start_modelserver(
    model_config_file: Path | None = None,
    *,
    model_name: str | None = None,
    model_base_path: Path | None = None,
    extra_flags: Sequence[str] = (),
    rest: bool = True,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 90.0,
) -> ModelServerHandle:
    """Start ``python -m modelserver`` on free loopback ports; returns once both ports accept connections.
    Use as a context manager."""
    grpc_port, rest_port = free_ports(2)
    if log_path is None:
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"modelserver-{grpc_port}.log"
    handle = modelserver_process(
        grpc_port=grpc_port,
        rest_port=rest_port if rest else None,
        log_path=log_path,
        model_config_file=model_config_file,
        model_name=model_name,
        model_base_path=model_base_path,
        extra_flags=extra_flags,
        env=env,
        startup_timeout=startup_timeout,
    )
    handle.start()
    return handle


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
    """Start ``python -m gateway`` on a free loopback port; returns once /healthz answers."""
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
        name="gateway",
        ports={"http": port},
        log_path=log_path,
        env=full_env,
        ready=ready,
        startup_timeout=30.0,
    )
    return Gateway(process.start(), port)
