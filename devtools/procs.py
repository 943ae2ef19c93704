"""Server processes on free loopback ports: start, readiness, measurement, stop. Used by tests, bench/ and
reliability/ (one class for all three).

    with ServerProcess([sys.executable, "-m", "gateway"], ports={"http": port}, log_path=log) as server:
        ...                                    # ports accept connections here (and ``ready()`` passed)

Contract: each process runs in its own session; ``stop()`` sends SIGTERM to that process group and SIGKILL
after a grace period, so no server outlives its owner, whatever fails. Output goes to ``log_path``. A
process that exits or is not ready within ``startup_timeout`` raises ``ServerFailed`` with its log tail.
Every address is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar

__all__ = [
    "LOOPBACK",
    "REPO_ROOT",
    "ServerFailed",
    "ServerProcess",
    "child_pids",
    "free_port",
    "free_ports",
    "http_get",
    "pids_with_connection",
    "tree_cpu_seconds",
    "tree_rss_bytes",
    "wait_for_port",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class ServerFailed(RuntimeError):
    """A server process exited or never became ready (its log tail is in the message)."""

    def __init__(self, name: str, reason: str, log_tail: str = "") -> None:
        detail = f"\n--- last lines of its log ---\n{log_tail}" if log_tail else ""
        super().__init__(f"{name}: {reason}{detail}")
        self.name = name


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (all bound at once, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(port: int, timeout: float = 10.0, alive: Callable[[], bool] = lambda: True) -> bool:
    """True once 127.0.0.1:``port`` accepts a connection; False after ``timeout`` or once ``alive()`` is
    False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a GET to a loopback URL; (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except (OSError, ValueError):
        return 0, b""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def child_pids(pid: int) -> list[int]:
    """The live direct children of ``pid`` (a modelserver's workers under ``--num_workers``)."""
    return sorted(_children().get(pid, []))


def pids_with_connection(pids: Sequence[int], port: int) -> set[int]:
    """Which of ``pids`` hold an ESTABLISHED TCP socket whose local port is ``port`` (/proc/net/tcp and
    tcp6: gRPC accepts IPv4 on IPv6 sockets): the server processes that accepted a connection to that port."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    holders: set[int] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        holders.add(pid)
                        break
    return holders


def _tree(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(tree.get(current, []))
    return out


def tree_rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` and all its descendants (BentoML and uvicorn spawn workers)."""
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):  # the process may be gone already
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * _PAGE
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
    return total / _CLK_TCK


class ServerProcess:
    """Runs ``command`` (in ``cwd``, output in ``log_path``). ``start()`` returns once every port in
    ``ports`` ({name: port}) accepts connections and ``ready()`` (optional) returns True."""

    failure: ClassVar[type[ServerFailed]] = ServerFailed  # bench/ raises its own subclass

    def __init__(
        self,
        command: Sequence[str],
        *,
        log_path: Path,
        name: str | None = None,
        ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = REPO_ROOT,
        ready: Callable[[], bool] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        self.command = list(command)
        self.name = name or Path(self.command[0]).name
        self.ports: dict[str, int] = dict(ports or {})
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self._ready = ready
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    # ---- start and readiness ---------------------------------------------------------------------------
    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() signals the whole group this object created
            )
        deadline = time.monotonic() + self.startup_timeout
        for label, port in self.ports.items():
            if not wait_for_port(port, max(0.1, deadline - time.monotonic()), self.alive):
                self._fail(f"{label} port {port} did not open")
        while self._ready is not None and not self._ready():
            if not self.alive() or time.monotonic() > deadline:
                self._fail("readiness check did not pass")
            time.sleep(0.05)
        return self

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Poll ``ready`` until true; return the seconds it took (recorded by bench/, never asserted).
        Raises ``failure`` if the process exits or ``timeout_s`` passes."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.alive():
                raise self.failure(self.name, f"exited ({self._exit_code()}) before {what}", self.log_tail())
            if ready():
                return time.monotonic() - started
            time.sleep(0.25)
        raise self.failure(self.name, f"not {what} after {timeout_s:.0f} s", self.log_tail())

    def wait_http(self, url: str, timeout_s: float) -> float:
        return self.wait_until(lambda: http_get(url)[0] == 200, timeout_s, f"ready at {url}")

    def _exit_code(self) -> str:
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return "running" if code is None else f"exit code {code}"

    def _fail(self, why: str) -> None:
        status = self._exit_code()
        self.stop()
        raise self.failure(f"{' '.join(self.command)}", f"{why} ({status})", self.log_tail())

    # ---- observation -----------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        if self.process is None:
            raise self.failure(self.name, "not started")
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.pid) if self.alive() else 0

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid) if self.alive() else 0.0

    # ---- stop ------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the process group, wait, then SIGKILL; returns the exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
            except ProcessLookupError:
                pass
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL to the process group: no chance to drain or say goodbye."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
