"""Load generators: h2load (nghttp2-client) for unary gRPC and wrk for HTTP, both C programs from Debian so
the client does not eat the server's CPU; their own CPU use is measured (``wait4`` rusage) and reported.

Contract: every run is bounded in time (``-D`` / ``-d``, plus a hard subprocess timeout) and aimed at
127.0.0.1 only. h2load counts a gRPC error as a success (the status travels in trailers), so callers must
check answers separately (server metrics by status, a sampled Python check); ``LoadResult.errors`` holds only
what the tool itself can see.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import LoadFailed, ToolMissing

__all__ = ["LoadResult", "Percentiles", "grpc_load", "http_load", "percentiles", "require_tools"]

_TOOLS = {"h2load": "nghttp2-client", "wrk": "wrk"}
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


def require_tools() -> None:
    for tool, package in _TOOLS.items():
        if shutil.which(tool) is None:
            raise ToolMissing(tool, package)


@dataclass
class Percentiles:
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    mean_ms: float = math.nan


def percentiles(latencies_us: list[float]) -> Percentiles:
    if not latencies_us:
        return Percentiles()
    data = sorted(latencies_us)

    def pick(q: float) -> float:
        return data[min(len(data) - 1, int(q * len(data)))] / 1000

    return Percentiles(pick(0.50), pick(0.90), pick(0.99), sum(data) / len(data) / 1000)


@dataclass
class LoadResult:
    """One measured load point. ``rps`` counts only answers the tool saw as successful."""

    tool: str
    url: str
    concurrency: int
    duration_s: float
    requests: int = 0
    ok: int = 0
    errors: int = 0
    rps: float = 0.0
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    mean_ms: float = math.nan
    loadgen_cpu_s: float = 0.0
    server_cpu_s: float | None = None
    notes: list[str] = field(default_factory=list)
    # h2load only: (start time in s since the epoch, latency in ms, HTTP status) per request.
    samples: list[tuple[float, float, int]] = field(default_factory=list, repr=False)

    @property
    def loadgen_cores(self) -> float:
        return self.loadgen_cpu_s / self.duration_s if self.duration_s else 0.0

    @property
    def server_cores(self) -> float | None:
        return (
            None if self.server_cpu_s is None or not self.duration_s else self.server_cpu_s / self.duration_s
        )

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("samples")
        out["loadgen_cores"] = round(self.loadgen_cores, 3)
        out["server_cores"] = None if self.server_cores is None else round(self.server_cores, 3)
        return out


def _run_measured(
    argv: list[str], timeout_s: float, env: dict[str, str] | None = None
) -> tuple[str, float, int]:
    """Run a load generator; return (stdout+stderr, its CPU seconds, exit code)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", errors="replace")
    return text, usage.ru_utime + usage.ru_stime, proc.returncode


def _check_loopback(url: str) -> None:
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise LoadFailed(f"refusing to send load anywhere but 127.0.0.1: {url}")


def grpc_load(
    port: int, method: str, body: Path, *, concurrency: int, duration_s: float, warmup_s: float = 0.0
) -> LoadResult:
    """Unary gRPC ``method`` (e.g. ``/tensorflow.serving.PredictionService/Predict``) with the length-prefixed
    request in ``body``, for ``duration_s`` at ``concurrency`` streams (over up to 8 connections)."""
    url = f"http://127.0.0.1:{port}{method}"
    _check_loopback(url)
    clients = min(concurrency, 8)
    streams = max(1, concurrency // clients)
    seconds = max(1, round(duration_s))  # h2load's -D takes whole seconds: rates are over what it ran
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as tmp:
        log = Path(tmp) / "requests.tsv"
        argv = [
            "h2load",
            "-c",
            str(clients),
            "-m",
            str(streams),
            "-t",
            "1",
            "-D",
            str(seconds),
            "-d",
            str(body),
            "--log-file",
            str(log),
        ]
        if warmup_s > 0:
            argv += ["--warm-up-time", f"{warmup_s:g}"]
        for header in GRPC_HEADERS:
            argv += ["-H", header]
        argv.append(url)
        text, cpu, code = _run_measured(argv, seconds + warmup_s + 30)
        rows = log.read_text().splitlines() if log.exists() else []
    if code != 0 or "requests:" not in text:
        raise LoadFailed(f"h2load exited {code}: {text[-800:]}")
    result = LoadResult("h2load", url, concurrency, seconds, loadgen_cpu_s=cpu)
    result.notes.append(f"{clients} connections x {streams} streams")
    samples: list[tuple[float, float, int]] = []
    for row in rows:
        parts = row.split("\t")
        if len(parts) >= 3:
            samples.append((float(parts[0]), float(parts[2]), int(parts[1])))
    ok_latencies = [elapsed for _, elapsed, status in samples if status == 200]
    result.samples = [(start / 1e6, elapsed / 1000, status) for start, elapsed, status in samples]
    result.requests = len(samples)
    result.ok = len(ok_latencies)
    result.errors = result.requests - result.ok
    # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout". Requests still in
    # flight when -D ends (started - done) are not failures; failed/errored/timeout are.
    for line in text.splitlines():
        if line.startswith("requests:"):
            words = line.replace(",", "").split()
            failed, errored, timed_out = int(words[9]), int(words[11]), int(words[13])
            result.errors = max(result.errors, failed) + errored + timed_out
    result.rps = result.ok / seconds
    vars(result).update(asdict(percentiles(ok_latencies)))
    return result


_WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local extra = os.getenv("BENCH_HEADER_NAME")
if extra and extra ~= "" then wrk.headers[extra] = os.getenv("BENCH_HEADER_VALUE") end
-- BENCH_BODIES (paths joined by newlines): several bodies, sent in turn (mixed-size uploads)
local bodies = {}
local list = os.getenv("BENCH_BODIES")
if list and list ~= "" then
  for path in string.gmatch(list, "[^\n]+") do
    local g = assert(io.open(path, "rb"))
    bodies[#bodies + 1] = g:read("*a")
    g:close()
  end
end
local turn = 0
if #bodies > 0 then  -- only then: a request() function costs wrk a Lua call per request
  function request()
    turn = turn % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[turn])
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"mean":%f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def http_load(
    url: str,
    body: Path,
    content_type: str,
    *,
    concurrency: int,
    duration_s: float,
    timeout_s: int = 5,
    warmup_s: float = 0.0,
    header: tuple[str, str] | None = None,
    more_bodies: Sequence[Path] = (),
) -> LoadResult:
    """POST ``body`` to ``url`` with wrk for ``duration_s`` over ``concurrency`` connections (one thread:
    the machine has two cores and the server needs them). A reply slower than ``timeout_s`` is dropped.
    ``header``: one more request header (e.g. OIP's ``Inference-Header-Content-Length``). ``more_bodies``:
    the requests cycle through ``body`` and these (same content type)."""
    _check_loopback(url)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_WRK_SCRIPT)
        env = {"BENCH_BODY": str(body), "BENCH_CONTENT_TYPE": content_type}  # read by the Lua script
        if header is not None:
            env["BENCH_HEADER_NAME"], env["BENCH_HEADER_VALUE"] = header
        if more_bodies:
            env["BENCH_BODIES"] = "\n".join(str(b) for b in (body, *more_bodies))

        def run(seconds: float) -> tuple[str, float, int]:
            argv = [
                "wrk",
                "-t",
                "1",
                "-c",
                str(concurrency),
                "-d",
                f"{max(1, round(seconds))}s",
                "--timeout",
                f"{timeout_s}s",
                "-s",
                str(script),
                url,
            ]
            return _run_measured(argv, seconds + timeout_s + 30, env)

        if warmup_s > 0:
            run(warmup_s)
        text, cpu, code = run(duration_s)
    line = next((x for x in text.splitlines() if x.startswith("BENCHJSON ")), None)
    if code != 0 or line is None:
        raise LoadFailed(f"wrk exited {code}: {text[-800:]}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    measured_s = data["duration_us"] / 1e6 or duration_s
    result = LoadResult("wrk", url, concurrency, measured_s, loadgen_cpu_s=cpu)
    result.requests = data["requests"]
    socket_errors = data["connect"] + data["read"] + data["write"]
    result.ok = max(0, data["requests"] - data["status"])
    result.errors = data["status"] + socket_errors + data["timeout"]
    if data["timeout"]:
        result.notes.append(f"{data['timeout']} replies slower than {timeout_s} s dropped")
    if data["status"]:
        result.notes.append(f"{data['status']} non-2xx replies")
    result.rps = result.ok / measured_s
    if result.ok:
        result.p50_ms, result.p90_ms, result.p99_ms = (data[k] / 1000 for k in ("p50", "p90", "p99"))
        result.mean_ms = data["mean"] / 1000
    return result
