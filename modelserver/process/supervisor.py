"""Supervisor: ``--num_workers`` > 1 runs that many serving processes on the same gRPC and REST ports, and
this parent process watches them. It never loads TensorFlow and serves nothing (about 50 MiB RSS).

Contract:
- Before any worker starts, the flags and config files are checked (by ``modelserver.process.cli``, as with one
  worker) and both ports are tried once without SO_REUSEPORT: a port another program holds fails the start
  here, instead of being silently shared (exit status 1).
- The workers are ``python -m modelserver`` with the same flags, told their index by ``WorkerContext``
  (``modelserver.process.peers``), each in its own session (a terminal's Ctrl-C reaches only this process). Each
  loads every model, waits until all have, then binds both ports with SO_REUSEPORT: the kernel spreads
  new connections across them (one gRPC channel is one connection, so it stays on one worker).
- SIGTERM/SIGINT: forwarded to every worker as SIGTERM (each drains as one server does); exit 0 once they
  have stopped. A worker that has not stopped after ``STOP_TIMEOUT`` is killed.
- A worker that exits on its own - at start (a model that does not load, a port it cannot bind) or later
  (a crash, the OOM killer) - stops the server: the others are stopped, the worker's error is repeated as
  the last line, and the supervisor exits non-zero (the worker's status, else 1). Workers are not
  restarted: a restarted worker would start from the start config, not from the config reloads have
  applied since, and a crash loop would be hidden; the process manager that restarts a one-process server
  (systemd, Kubernetes, Docker's restart policy) restarts this one the same way.
- The RAM budget (``--total_model_memory_limit_bytes``, else 90% of the memory available) is measured once
  here, for the machine, and each worker holds 1/N of it.
- Workers die with the supervisor: each watches a pipe whose write end only this process holds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from modelserver.errors import ConfigError
from modelserver.process.options import ServerOptions, default_ram_budget

__all__ = ["STOP_TIMEOUT", "WorkerContext", "check_port_free", "supervise"]

log = logging.getLogger("modelserver.supervisor")

STOP_TIMEOUT = 30.0  # a worker drains for up to GRACE_SECONDS (5 s) per port, then unloads
ENV = "_MODELSERVER_WORKER"


@dataclass(frozen=True)
class WorkerContext:
    """How the supervisor tells a process it is worker ``index`` of ``count`` (one private environment
    variable): ``directory`` is private (mode 0700) and holds each worker's control socket, the cluster lock
    and the metrics files; ``parent_fd`` is the read end of a pipe whose EOF means the supervisor is gone."""

    index: int
    count: int
    directory: Path
    parent_fd: int

    @classmethod
    def from_env(cls) -> WorkerContext | None:
        raw = os.environ.get(ENV)
        if not raw:
            return None
        values = json.loads(raw)
        return cls(int(values["index"]), int(values["count"]), Path(values["dir"]), int(values["parent_fd"]))

    def env(self) -> dict[str, str]:
        value = {
            "index": self.index,
            "count": self.count,
            "dir": str(self.directory),
            "parent_fd": self.parent_fd,
        }
        return {ENV: json.dumps(value)}

    def socket_path(self, index: int) -> Path:
        return self.directory / f"worker-{index}.sock"

    @property
    def metrics_dir(self) -> Path:
        return self.directory / "metrics"

    @property
    def ready_path(self) -> Path:
        """Created once this worker serves on its ports."""
        return self.directory / f"worker-{self.index}.ready"

    @property
    def error_path(self) -> Path:
        """Where a worker that cannot start writes its error, for the supervisor to repeat."""
        return self.directory / f"worker-{self.index}.error"


def check_port_free(host: str, port: int, what: str) -> None:
    """Bind ``port`` once without SO_REUSEPORT: fails if any program listens there."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {what} port {port}: {exc}") from None


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class _Workers:
    def __init__(self, options: ServerOptions, argv: Sequence[str], directory: Path) -> None:
        self.count = options.workers
        self.directory = directory
        self.metrics_dir = directory / "metrics"
        self.metrics_dir.mkdir()
        self.read_fd, self.write_fd = os.pipe()
        total = options.total_model_memory_limit_bytes or default_ram_budget()
        self.command = [
            sys.executable,
            "-m",
            "modelserver",
            *argv,
            f"--total_model_memory_limit_bytes={total}",
        ]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self.stop_deadline = 0.0

    def start(self) -> None:
        for index in range(self.count):
            context = WorkerContext(index, self.count, self.directory, self.read_fd)
            env = {**os.environ, **context.env(), "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
            self.procs.append(
                subprocess.Popen(self.command, env=env, pass_fds=(self.read_fd,), start_new_session=True)
            )
        os.close(self.read_fd)
        log.info("started %d workers: pids %s", self.count, ", ".join(str(p.pid) for p in self.procs))

    def stop(self, _signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def error_of(self, index: int) -> str:
        try:
            return WorkerContext(index, self.count, self.directory, -1).error_path.read_text().strip()
        except OSError:
            return ""

    def watch(self) -> int:
        """Until every worker has exited; the exit status of the whole server."""
        exited: dict[int, int] = {}
        failed: int | None = None
        serving = False
        while len(exited) < len(self.procs):
            time.sleep(0.1)
            if self.stopping and time.monotonic() > self.stop_deadline:
                log.error("workers still running %.0f s after SIGTERM: killing them", STOP_TIMEOUT)
                self.kill()
            for index, proc in enumerate(self.procs):
                code = proc.poll()
                if code is None or index in exited:
                    continue
                exited[index] = code
                mark_process_dead(proc.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
                if self.stopping:
                    continue
                failed = index
                log.error(
                    "worker %d (pid %d) %s; stopping the other workers (workers are not restarted)",
                    index,
                    proc.pid,
                    _describe(code),
                )
                self.stop()
            if not serving and not self.stopping:
                serving = all(
                    WorkerContext(i, self.count, self.directory, -1).ready_path.exists()
                    for i in range(self.count)
                )
                if serving:
                    log.info("all %d workers serving", self.count)
        if failed is None:
            bad = [code for code in exited.values() if code not in (0, -signal.SIGTERM)]
            return 1 if bad else 0
        code = exited[failed]
        error = self.error_of(failed)
        when = "could not start" if not serving else "stopped serving"
        print(
            f"modelserver: worker {failed} {when}: {error or _describe(code)}"
            + ("" if serving or error else " (its log is above)"),
            file=sys.stderr,
        )
        return code if code > 0 else 1


def supervise(options: ServerOptions, argv: Sequence[str]) -> int:
    """Run ``options.workers`` workers with ``argv`` (the command line's flags) until they stop."""
    if options.port:
        check_port_free(options.bind_host, options.port, "gRPC")
    if options.rest_api_port:
        check_port_free(options.bind_host, options.rest_api_port, "REST")
    directory = Path(tempfile.mkdtemp(prefix="modelserver-workers-"))  # mode 0700
    workers = _Workers(options, argv, directory)
    previous = {sig: signal.signal(sig, workers.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        workers.start()
        return workers.watch()
    finally:
        workers.stop()
        workers.kill()
        os.close(workers.write_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(directory, ignore_errors=True)
