"""Server processes under measurement: ``devtools.procs.ServerProcess`` (free loopback ports, readiness, RSS
and CPU time of the whole process tree from /proc, always stopped) raising the bench's own ``ServerFailed``
so ``bench.__main__`` reports it like every other ``BenchError``."""

from __future__ import annotations

from typing import ClassVar

from bench.errors import ServerFailed
from devtools import procs
from devtools.procs import free_port, http_get, tree_cpu_seconds, tree_rss_bytes

__all__ = ["ServerProcess", "free_port", "http_get", "tree_cpu_seconds", "tree_rss_bytes"]


class ServerProcess(procs.ServerProcess):
    failure: ClassVar[type[procs.ServerFailed]] = ServerFailed
