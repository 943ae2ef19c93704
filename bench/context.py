"""The state one bench run shares between scenarios: settings, the work directory, the bench's model
repository, the request bodies, and the results being collected (a JSON-ready dict)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import LoadResult
from bench.payloads import Payloads
from bench.procs import ServerProcess
from bench.profiling import Profile, profile
from bench.settings import BenchSettings

__all__ = ["Context"]


@dataclass
class Context:
    settings: BenchSettings
    repo_root: Path  # the checkout (the servers run with it as cwd)
    work: Path  # temporary: logs, bodies, the bench's model repository
    repo: Path  # the bench's model repository (copies of the published versions)
    versions: dict[str, int]
    payloads: Payloads
    results: dict[str, Any] = field(default_factory=dict)
    profiles: list[Profile] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def say(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    def skip(self, scenario: str, reason: str) -> None:
        self.results.setdefault("skipped", {})[scenario] = reason
        self.say(f"SKIPPED {scenario}: {reason}")

    def model_path(self, name: str) -> Path:
        return self.repo / name / str(self.versions[name])

    def server(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> ServerProcess:
        return ServerProcess(
            argv,
            name=name,
            log_path=self.work / "logs" / f"{name}.log",
            env=env,
            cwd=cwd or self.repo_root,
            startup_timeout=self.settings.ready_timeout_s,
        )

    def point(self, key: str, server: ServerProcess | None, load: Callable[[], LoadResult]) -> LoadResult:
        """Run one load point, charge the server's CPU seconds to it, store and print its summary (with
        ``wall_s``, the seconds the CPU was counted over: the warm-up, the window and the tool's start)."""
        cpu_before, started = server.cpu_seconds() if server else 0.0, time.monotonic()
        result = load()
        if server is not None:
            result.server_cpu_s = server.cpu_seconds() - cpu_before
        summary = result.summary()
        summary["wall_s"] = round(time.monotonic() - started, 3)
        self.results.setdefault("points", {})[key] = summary
        p99 = "" if math.isnan(result.p99_ms) else f", p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms"
        self.say(
            f"{key}: {result.rps:.0f} req/s{p99}, {result.errors} errors, "
            f"load generator {result.loadgen_cores:.2f} cores"
        )
        return result

    def measure_server(self, name: str, server: ServerProcess) -> None:
        """Record ``server``'s memory now (RSS and PSS of its process tree), its start-up time and the
        addresses it listens on, under ``name``."""
        rss, pss = server.rss_bytes(), server.pss_bytes()
        self.results.setdefault("rss_bytes", {})[name] = rss
        self.results.setdefault("pss_bytes", {})[name] = pss
        if server.ready_s is not None:
            self.results.setdefault("startup_s", {})[name] = round(server.ready_s, 2)
        self.results.setdefault("listening", {})[name] = server.listening()
        up = server.ready_s or 0.0
        self.say(f"{name}: PSS {pss / 2**20:.0f} MiB (RSS {rss / 2**20:.0f} MiB), start-up {up:.1f} s")

    def profile(self, server: ServerProcess, target: str, load: Callable[[], Any]) -> None:
        """Profile ``server`` with py-spy while ``load`` runs (in a thread); no-op when profile_s is 0."""
        if self.settings.profile_s <= 0:
            return
        import threading

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        time.sleep(min(1.0, self.settings.profile_s / 4))
        out = self.work / "profiles" / f"{target.replace(' ', '_')}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        found = profile(server.pid, self.settings.profile_s, out, target)
        thread.join(timeout=self.settings.profile_s + 60)
        self.profiles.append(found)
        top = ", ".join(f"{name} {share:.0%}" for name, share in found.own[:3]) or found.error
        self.say(f"profile {target}: {top}")
