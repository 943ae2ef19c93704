"""Errors of the bench harness; ``bench.__main__`` maps them to one line and an exit code.

    BenchError              anything that stops the run, with a message saying what to fix
    ├── ToolMissing         a load generator or profiler is not installed
    ├── ServerFailed        a server process exited or never became ready (its log tail is in the message)
    └── LoadFailed          a load generator run failed or printed nothing parseable

A scenario that cannot run (e.g. a component not built yet, BentoML not installable) is not an error of the
run: it is recorded as ``skipped`` with its reason and the rest goes on.
"""

from __future__ import annotations

from devtools import procs

__all__ = ["BenchError", "LoadFailed", "ServerFailed", "ToolMissing"]


class BenchError(Exception):
    exit_code = 1


class ToolMissing(BenchError):
    def __init__(self, tool: str, package: str) -> None:
        super().__init__(f"{tool} is not installed: `apt-get install -y {package}` (make bench does it)")
        self.tool = tool


class ServerFailed(BenchError, procs.ServerFailed):
    """``devtools.procs.ServerFailed`` as a bench error (raised by ``bench.procs.ServerProcess``)."""


class LoadFailed(BenchError):
    pass
