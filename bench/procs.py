"""Server processes under measurement: ``devtools.procs.ServerProcess`` (free loopback ports, readiness, RSS
and CPU time of the whole process tree from /proc, always stopped) raising the bench's own ``ServerFailed``
so ``bench.__main__`` reports it like every other ``BenchError``; plus what comparing servers needs: the
start-up time, PSS of the process tree, the TCP addresses the tree listens on, and a stop that also ends
descendants that left the process group (Ray starts its own sessions).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, ClassVar

from bench.errors import ServerFailed
from devtools import procs
from devtools.procs import _tree, free_port, http_get, tree_cpu_seconds, tree_rss_bytes

__all__ = [
    "ServerProcess",
    "free_port",
    "http_get",
    "listening_addresses",
    "tree_cpu_seconds",
    "tree_pss_bytes",
    "tree_rss_bytes",
]


def tree_pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid`` and its descendants (``Pss`` of /proc/<pid>/smaps_rollup): each
    shared page is split between the processes sharing it, so a tree of many processes (Ray's) is not
    charged once per process for the same library pages, as an RSS sum would be."""
    total = 0
    for member in _tree(pid):
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024  # kB
                break
    return total


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for member in pids:
        try:
            fds = os.listdir(f"/proc/{member}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{member}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # four host-order 32-bit words
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def listening_addresses(pid: int) -> list[str]:
    """Every TCP address ``pid`` and its descendants listen on, e.g. ``127.0.0.1:8501`` or ``[::]:9000``
    (from /proc/net/tcp and tcp6: state 0A is LISTEN)."""
    inodes = _socket_inodes(_tree(pid))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                found.add(_address(fields[1]))
    return sorted(found)


def _start_time(pid: int) -> int | None:
    """The start time of a live process (field 22 of proc(5)); None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


class ServerProcess(procs.ServerProcess):
    failure: ClassVar[type[procs.ServerFailed]] = ServerFailed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started_at = 0.0
        self.ready_s: float | None = None  # start-up time: from start() to mark_ready()

    def start(self) -> ServerProcess:
        self._started_at = time.monotonic()
        super().start()
        return self

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def mark_ready(self) -> float:
        """Record the start-up time (called by whoever started it, once it really serves)."""
        self.ready_s = time.monotonic() - self._started_at
        return self.ready_s

    def pss_bytes(self) -> int:
        return tree_pss_bytes(self.pid) if self.alive() else 0

    def listening(self) -> list[str]:
        return listening_addresses(self.pid) if self.alive() else []

    def stop(self, timeout: float = 15.0) -> int | None:
        """As ``devtools``' stop, then SIGKILL any descendant that had left the process group and is still
        running after another ``timeout``."""
        members = {} if not self.alive() else {p: _start_time(p) for p in _tree(self.pid) if p != self.pid}
        code = super().stop(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_start_time(p) == t for p, t in members.items()):
            time.sleep(0.2)
        for pid, started in members.items():
            if _start_time(pid) == started:  # the same process (not a reused pid), still running
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return code
