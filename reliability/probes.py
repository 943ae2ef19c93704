"""Resource probes of a running process, read from /proc (Linux): resident memory, open fds, threads.

``anon_bytes`` is the resident memory only the process holds (heap, buffers: ``RssAnon``); the rest of
``rss_bytes`` is file pages (shared libraries), which the model server releases after loads and faults back
in on use - no request can make it hold more of those than the libraries' size."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

__all__ = ["Usage", "flat_within", "usage"]


@dataclass(frozen=True)
class Usage:
    rss_bytes: int
    fds: int
    threads: int
    anon_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def usage(pid: int) -> Usage:
    rss = threads = anon = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return Usage(rss, len(os.listdir(f"/proc/{pid}/fd")), threads, anon)


def flat_within(samples: list[int], tolerance: float) -> tuple[bool, float]:
    """(True, drift) when the last sample is within ``tolerance`` (0.05 = 5 %) of the first; drift signed."""
    if not samples or samples[0] == 0:
        return True, 0.0
    drift = (samples[-1] - samples[0]) / samples[0]
    return abs(drift) <= tolerance, drift
