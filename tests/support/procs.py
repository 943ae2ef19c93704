"""Real processes for end-to-end tests: free loopback ports, a ``ServerProcess`` context manager, and
``start_modelserver``. Every connection goes to 127.0.0.1, bounded in count and time.

    with start_modelserver(model_name="half", model_base_path=base) as server:
        channel = grpc.insecure_channel(server.grpc_target)
        httpx.get(f"{server.url}/v1/models/half")

A server that dies or does not become ready in time fails the test with the tail of its log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["REPO_ROOT", "ServerProcess", "free_port", "start_modelserver", "wait_for_port"]

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, alive: Callable[[], bool] = lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return True
        time.sleep(0.05)
    return False


class ServerProcess:
    """Runs ``command`` with its output captured in ``log_path``; ready once every port in ``ports`` accepts
    connections and ``ready()`` (optional) returns True. ``stop()`` sends SIGTERM then SIGKILL."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        ports: Sequence[int] = (),
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
        ready: Callable[[], bool] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        self.command = list(command)
        self.ports = list(ports)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self._ready = ready
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def log_text(self, tail: int = 60) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-tail:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_timeout
        for port in self.ports:
            if not wait_for_port(port, max(0.1, deadline - time.monotonic()), self.alive):
                self._fail(f"port {port} did not open")
        while self._ready is not None and not self._ready():
            if not self.alive() or time.monotonic() > deadline:
                self._fail("readiness check did not pass")
            time.sleep(0.05)
        return self

    def _fail(self, why: str) -> None:
        status = (
            f"exited with {self.process.returncode}" if self.process and not self.alive() else "running"
        )
        self.stop()
        raise RuntimeError(f"{' '.join(self.command)}: {why} ({status}). Log tail:\n{self.log_text()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ModelServerHandle(ServerProcess):
    """A running ``python -m modelserver`` with its ports."""

    def __init__(
        self, command: Sequence[str], *, grpc_port: int, rest_port: int | None, **kwargs: object
    ) -> None:
        ports = [grpc_port] + ([rest_port] if rest_port else [])
        super().__init__(command, ports=ports, **kwargs)  # type: ignore[arg-type]
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
    """Start ``python -m modelserver`` on free loopback ports and wait until both ports accept connections
    (the server opens them only after the configured models are loaded). Use as a context manager."""
    grpc_port = free_port()
    rest_port = free_port() if rest else None
    while rest_port == grpc_port:
        rest_port = free_port()
    command = [sys.executable, "-m", "modelserver", f"--port={grpc_port}"]
    if rest_port:
        command.append(f"--rest_api_port={rest_port}")
    if model_config_file is not None:
        command.append(f"--model_config_file={model_config_file}")
    if model_base_path is not None:
        command.append(f"--model_base_path={model_base_path}")
        command.append(f"--model_name={model_name or 'default'}")
    command.extend(extra_flags)
    if log_path is None:
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"modelserver-{grpc_port}.log"
    server_env = {
        "MODELSERVER_BIND_HOST": LOOPBACK,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO_ROOT),
        **(env or {}),
    }
    handle = ModelServerHandle(
        command,
        grpc_port=grpc_port,
        rest_port=rest_port,
        log_path=log_path,
        env=server_env,
        startup_timeout=startup_timeout,
    )
    return handle.start()
