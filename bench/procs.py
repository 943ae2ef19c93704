"""Server processes under measurement: started on free loopback ports in their own session, watched for
readiness, measured (RSS and CPU time of the whole process tree, from /proc) and always stopped.

Contract: ``ServerProcess`` is a context manager; leaving it sends SIGTERM to the process group it created
(and SIGKILL after a grace period), so no server outlives the run, whatever fails.
"""

from __future__ import annotations

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

from bench.errors import ServerFailed

__all__ = ["ServerProcess", "free_port", "http_get", "tree_cpu_seconds", "tree_rss_bytes"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind port 0; the tiny race with other binders is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a GET to a loopback URL; (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - loopback only
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
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
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
    """One server under test. ``argv`` runs with ``cwd``; stdout and stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerFailed(self.name, "not started")
        return self._proc.pid

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    def __enter__(self) -> ServerProcess:
        return self.start() if self._proc is None else self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Poll ``ready`` until true; return the seconds it took. Raises ServerFailed if the process exits
        or the timeout passes."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.alive():
                raise ServerFailed(
                    self.name,
                    f"exited (code {self._proc.returncode if self._proc else '?'}) before {what}",
                    self.log_tail(),
                )
            if ready():
                return time.monotonic() - started
            time.sleep(0.25)
        raise ServerFailed(self.name, f"not {what} after {timeout_s:.0f} s", self.log_tail())

    def wait_http(self, url: str, timeout_s: float) -> float:
        return self.wait_until(lambda: http_get(url)[0] == 200, timeout_s, f"ready at {url}")

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.pid) if self.alive() else 0

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid) if self.alive() else 0.0

    def stop(self, grace_s: float = 10.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group this object created (start_new_session)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace_s)
        except ProcessLookupError:
            pass
