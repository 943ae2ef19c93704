"""The second attack on the gateway (issue 25), class by class: trust in client headers, names with a newline,
memory amplification by small requests (wrong-typed JSON values, many multipart files, RGBA PNGs just under the
pixel limit), a body that drips forever and a connection flood (past ``GATEWAY_MAX_CONNECTIONS`` a new
connection gets 503 and is closed at once).

Each class must end in its 4xx, the gateway's anonymous RSS (``RssAnon``) growing by less than
``attack.RSS_BOUND_BYTES`` during it and by less than ``KEPT_BOUND_BYTES`` once it is over (what the process
keeps), with a neighbour client served without an error meanwhile. Classes that need their own settings (a rate
limit, a short body deadline) run against one more gateway process beside the stack (``extra_gateway``).
The canary class runs against a copy of housing/1 published as housing/2 (the same cost per row): one client
choosing the canary side with 1000-row requests must not roll it back (that a genuinely slow version still is
rolled back needs a slow model: tests/gateway/test_canary_rule_e2e.py).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

from reliability.attack import HOUSING, RSS_BOUND_BYTES, control_token
from reliability.harness import Neighbour, peak_rss, raw_http
from reliability.outcome import Outcome
from reliability.probes import usage
from reliability.replies import error_message
from reliability.stack import Stack, extra_gateway, wait_until

__all__ = [
    "KEPT_BOUND_BYTES",
    "canary_by_one_client",
    "decoded_within_budget",
    "forwarded_for",
    "label_names",
    "many_files",
    "new_connection_status",
    "png_of_zeros",
    "rgba_pngs",
    "run_steps",
    "slow_drip",
    "wrong_typed_json",
]

KEPT_BOUND_BYTES = 32 * 1024 * 1024  # anonymous memory the gateway may keep after an attack
DEADLINE_S = 4.0  # the extra gateway's GATEWAY_BODY_DEADLINE_SECONDS
CONNECTION_CAP = 1000  # GATEWAY_MAX_CONNECTIONS' default
RATE, BURST = 1.0, 5
RECORD = {"records": [{"median_income": 3.0}]}
CANARY_ROWS = 1000  # records in each of the canary attacker's requests


def png_of_zeros(width: int, height: int, channels: int = 4) -> bytes:
    """A black ``width x height`` PNG (8-bit gray, RGB or RGBA), compressed row by row: a few hundred KiB
    for tens of megapixels, built without holding the pixels."""
    color = {1: 0, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    row = b"\0" * (1 + width * channels)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    head = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, color, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _settled(pid: int) -> int:
    """The process's anonymous RSS once it has had a moment to free what a request left."""
    time.sleep(1.0)
    return usage(pid).anon_bytes


def _measured(stack: Stack, outcome: Outcome, name: str, send: Any, expected: set[int]) -> dict[str, Any]:
    """Run ``send() -> (status, message)`` against the stack's gateway with a neighbour; check and report."""
    pid = stack.pids()["gateway"]
    before = _settled(pid)
    with (
        Neighbour(f"{stack.gateway_url}{HOUSING}", RECORD) as neighbour,
        peak_rss(pid) as found,
    ):
        started = time.perf_counter()
        status, message = send()
        seconds = time.perf_counter() - started
    grown = found["peak"] - found["start"]
    kept = _settled(pid) - before
    outcome.check(
        status in expected and bool(message), f"gateway {name}: got {status} {message!r}, expected {expected}"
    )
    outcome.check(grown <= RSS_BOUND_BYTES, f"gateway {name}: anonymous RSS grew {grown >> 20} MiB")
    outcome.check(kept <= KEPT_BOUND_BYTES, f"gateway {name}: kept {kept >> 20} MiB after the attack")
    outcome.check(neighbour.failures == 0, f"gateway {name}: {neighbour.failures} neighbour calls failed")
    key = re.sub(r"[^a-z0-9]+", "_", name.lower())
    outcome.cases.append({"case": f"gateway: {name}", "status": status, "rss_mib": grown >> 20})
    return {
        f"{key}_status": status,
        f"{key}_rss_mib": round(grown / 2**20, 1),
        f"{key}_kept_mib": round(kept / 2**20, 1),
        f"{key}_seconds": round(seconds, 2),
        f"{key}_neighbour_worst_ms": neighbour.worst_ms,
        f"{key}_neighbour_failures": neighbour.failures,
    }


def _reply(reply: httpx.Response) -> tuple[int, str]:
    return reply.status_code, error_message(reply) or ""


def wrong_typed_json(stack: Stack, outcome: Outcome, values: int) -> dict[str, Any]:
    """``{"texts": [1, 1, ...]}`` with ``values`` wrong-typed values (250,000: 488 KiB): pydantic built one
    error object per value to report the first (+253 MiB, 0.5 s of the event loop)."""
    body = b'{"texts": [' + b",".join([b"1"] * values) + b"]}"

    def send() -> tuple[int, str]:
        return _reply(
            httpx.post(
                f"{stack.gateway_url}/v1/models/text:classify",
                content=body,
                headers={"content-type": "application/json"},
                timeout=60,
            )
        )

    figures = _measured(stack, outcome, "wrong-typed JSON", send, {400})
    return {"wrong_typed_json_values": values, "wrong_typed_json_kib": len(body) >> 10, **figures}


def many_files(stack: Stack, outcome: Outcome, files: int, file_bytes: int) -> dict[str, Any]:
    """``files`` multipart files of ``file_bytes`` each, every one inside the per-file limit and their count
    inside ``GATEWAY_MAX_FILES``: all were read into memory before the first decode (32 x 10 MB: +306 MiB)."""
    netloc = urlsplit(stack.gateway_url).netloc.encode()
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="%d.png"\r\n\r\n'
    block = b"\0" * 65536
    # chunked, as a client that does not know its length sends it: refused while it streams
    head = (
        b"POST /v1/models/fashion:classify HTTP/1.1\r\nHost: "
        + netloc
        + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    def body() -> Iterator[bytes]:
        for index in range(files):
            yield chunk(part % index)
            for _ in range(file_bytes // len(block)):
                yield chunk(block)
            yield chunk(block[: file_bytes % len(block)] + b"\r\n")
        yield chunk(b"--b--\r\n") + b"0\r\n\r\n"

    def send() -> tuple[int, str]:
        status, reply, _ = raw_http(stack.gateway_url, head, body(), read_timeout=120)
        return status, reply.decode(errors="replace")[:200]

    figures = _measured(stack, outcome, "many files", send, {413})
    return {"many_files": files, "many_files_mb": file_bytes // 10**6, **figures}


def rgba_pngs(stack: Stack, outcome: Outcome, pixels: int) -> dict[str, Any]:
    """Two RGBA PNGs of ``pixels`` each (39.6 M: just under the 40 M pixel limit, 150 KiB each): decoded,
    composited and converted they took +907 MiB."""
    side = int(pixels**0.5)
    png = png_of_zeros(side, pixels // side, 4)

    def send() -> tuple[int, str]:
        files = [("file", (f"{i}.png", png, "image/png")) for i in range(2)]
        return _reply(httpx.post(f"{stack.gateway_url}/v1/models/fashion:classify", files=files, timeout=120))

    figures = _measured(stack, outcome, "RGBA PNGs", send, {413})
    return {"rgba_png_mpx": round(pixels / 1e6, 1), "rgba_png_kib": len(png) >> 10, **figures}


def decoded_within_budget(stack: Stack, outcome: Outcome, pixels: int) -> dict[str, Any]:
    """Two RGB PNGs of ``pixels`` each that fit in the decode budget together: answered, and the decode's
    memory is given back once the request is over."""
    side = int(pixels**0.5)
    png = png_of_zeros(side, pixels // side, 3)

    def send() -> tuple[int, str]:
        files = [("file", (f"{i}.png", png, "image/png")) for i in range(2)]
        reply = httpx.post(f"{stack.gateway_url}/v1/models/fashion:classify", files=files, timeout=120)
        return reply.status_code, reply.text[:200]

    figures = _measured(stack, outcome, "RGB PNGs within the budget", send, {200})
    return {"budget_png_mpx": round(pixels / 1e6, 1), **figures}


def label_names(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """``PUT .../labels/probe%0A``: was accepted (``re.match`` with ``$``) and written into models.config."""
    before = stack.config.read_bytes()
    statuses = []
    for label in ("probe%0A", "probe%0D%0Ainjected", "a" * 65):
        reply = httpx.put(
            f"{stack.gateway_url}/v1/admin/models/housing/labels/{label}",
            json={"version": 1},
            headers={"Authorization": f"Bearer {stack.admin_token}"},
            timeout=60,
        )
        statuses.append(reply.status_code)
        outcome.check(
            reply.status_code == 400, f"label {label!r}: got {reply.status_code} {reply.text[:160]}"
        )
    unchanged = stack.config.read_bytes() == before
    outcome.check(unchanged, "a refused label changed models.config")
    return {"label_newline_statuses": statuses, "label_config_unchanged": unchanged}


def forwarded_for(gateway_url: str, outcome: Outcome, requests: int) -> dict[str, Any]:
    """A new ``X-Forwarded-For`` on every request from 127.0.0.1: uvicorn trusted it by default, so the rate
    limit keyed on whatever the client claimed and never limited it."""
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        statuses = [
            client.get("/v1/models/housing", headers={"X-Forwarded-For": f"203.0.113.{i % 250}"}).status_code
            for i in range(requests)
        ]
    limited = statuses.count(429)
    # a token comes back every 1/RATE s: allow one per second the requests took, at most
    outcome.check(
        limited >= requests - BURST - 5,
        f"forwarded-for: {limited} of {requests} requests with a new X-Forwarded-For each were rate-limited",
    )
    return {"xff_requests": requests, "xff_limited": limited}


def slow_drip(gateway_url: str, outcome: Outcome, seconds: float) -> dict[str, Any]:
    """A body that announces 100 KB and sends one byte a second (under the idle timeout): it was never ended;
    the total-body deadline closes it with 408."""
    netloc = urlsplit(gateway_url).netloc.encode()
    head = (
        b"POST /v1/models/housing:regress HTTP/1.1\r\nHost: "
        + netloc
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )

    def drip() -> Iterator[bytes]:
        for _ in range(int(seconds)):
            time.sleep(1.0)
            yield b" "

    status, _, held = raw_http(gateway_url, head, drip(), read_timeout=seconds * 2)
    ok = status in (408, 0) and held < DEADLINE_S + 3
    outcome.check(ok, f"slow drip: held {held:.1f} s (status {status}); deadline {DEADLINE_S} s")
    return {"slow_drip_status": status, "slow_drip_closed_after_s": round(held, 1), "deadline_s": DEADLINE_S}


def new_connection_status(host: str, port: int) -> int:
    """The status a new connection gets for ``GET /healthz`` (0: closed without one)."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def connection_flood(stack: Stack, outcome: Outcome, connections: int) -> dict[str, Any]:
    """``connections`` idle TCP connections to the gateway: past ``GATEWAY_MAX_CONNECTIONS`` a new one gets 503
    and is closed at once, so the gateway's descriptors stay bounded, while a client connected before the
    flood keeps being served on its connection."""
    pid = stack.pids()["gateway"]
    address = urlsplit(stack.gateway_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    fds_before = usage(pid).fds
    held: list[socket.socket] = []
    with Neighbour(f"{stack.gateway_url}{HOUSING}", RECORD) as neighbour, peak_rss(pid) as found:
        try:
            for _ in range(connections):
                with contextlib.suppress(OSError):
                    held.append(socket.create_connection((host, port), timeout=10))
            refused = wait_until(lambda: new_connection_status(host, port) == 503, 60, interval=0.2)
            fds_held = usage(pid).fds
        finally:
            for sock in held:
                sock.close()
        served = wait_until(lambda: new_connection_status(host, port) == 200, 60, interval=0.2)
    grown = found["peak"] - found["start"]
    outcome.check(refused, f"gateway connection flood: no new connection refused past {CONNECTION_CAP}")
    outcome.check(
        fds_held - fds_before <= CONNECTION_CAP + 64,
        f"gateway connection flood: it holds {fds_held - fds_before} more descriptors (cap {CONNECTION_CAP})",
    )
    outcome.check(served, "gateway connection flood: new connections not served once it was over")
    outcome.check(
        neighbour.failures == 0, f"gateway connection flood: {neighbour.failures} neighbour failures"
    )
    outcome.check(grown <= RSS_BOUND_BYTES, f"gateway connection flood: anonymous RSS grew {grown >> 20} MiB")
    return {
        "connection_flood_connections": connections,
        "connection_flood_fds_before": fds_before,
        "connection_flood_fds_held": fds_held,
        "connection_flood_refused_503": refused,
        "connection_flood_rss_mib": round(grown / 2**20, 1),
        "connection_flood_neighbour_failures": neighbour.failures,
        "connection_flood_neighbour_worst_ms": neighbour.worst_ms,
    }


def _canary_key(model: str) -> str:
    from gateway.rollout.traffic import in_canary  # the gateway's own split: the key is public

    return next(k for k in (f"pick-{i}" for i in range(1000)) if in_canary(model, k, 50))


def canary_by_one_client(stack: Stack, outcome: Outcome, gateway_url: str) -> dict[str, Any]:
    """A canary at 50 %; five neighbours (distinct X-Forwarded-For through a trusted proxy) send one record
    each; one more client picks the canary side with its key and sends 1000-record requests. The old rule (p99
    of all requests > stable's x 2 + slack, slack 0 here) would roll it back; it must keep running."""
    base = stack.repo / "housing"
    if not (base / "2").exists():
        shutil.copytree(base / "1", base / ".publish-2")
        (base / ".publish-2").rename(base / "2")  # whole, as the export publishes
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    url = f"{gateway_url}/v1/admin/models/housing"
    started = httpx.put(f"{url}/canary", json={"version": 2, "weight": 50}, headers=admin, timeout=120)
    outcome.check(
        started.status_code == 200, f"canary: start refused: {started.status_code} {started.text[:200]}"
    )
    if started.status_code != 200:
        return {}
    key, neighbours = _canary_key("housing"), [f"198.51.100.{i}" for i in range(5)]

    def call(client: str, rows: int = 1, canary_key: str | None = None) -> int:
        headers = {"X-Forwarded-For": client, **({"X-Canary-Key": canary_key} if canary_key else {})}
        body = {"records": [{"median_income": 3.0}] * rows}
        reply = httpx.post(f"{gateway_url}{HOUSING}", json=body, headers=headers, timeout=60)
        return reply.status_code

    def window() -> dict[str, Any]:
        found = httpx.get(url, headers=admin, timeout=60).json().get("canary") or {}
        return {"status": found.get("status"), **(found.get("window") or {})}

    statuses: list[int] = []
    with ThreadPoolExecutor(6) as pool:

        def judged() -> bool:
            jobs = [pool.submit(call, "203.0.113.66", CANARY_ROWS, key)]
            jobs += [pool.submit(call, client) for _ in range(4) for client in neighbours]
            statuses.extend(job.result() for job in jobs)
            found = window()
            return min(found.get("canary_requests", 0), found.get("stable_requests", 0)) >= 120

        enough = wait_until(judged, 120, interval=0)
    found = window()
    outcome.check(enough, f"canary: 120 requests on each side not reached in 120 s: {found}")
    httpx.delete(f"{url}/canary", headers=admin, timeout=120)
    httpx.post(f"{url}:latest", headers=admin, timeout=120)
    old_rule = found.get("canary_p99_seconds", 0) > found.get("stable_p99_seconds", 0) * 2
    outcome.check(found.get("status") == "running", f"canary: one client rolled it back: {found}")
    outcome.check(set(statuses) == {200}, f"canary: replies {sorted(set(statuses))}")
    return {
        "canary_status": found.get("status"),
        "canary_old_rule_fires": old_rule,
        "canary_p99_ms": round(found.get("canary_p99_seconds", 0) * 1000, 1),
        "stable_p99_ms": round(found.get("stable_p99_seconds", 0) * 1000, 1),
        "canary_regressed_clients": found.get("regressed_clients"),
        "canary_clients": found.get("canary_clients"),
    }


def run_steps(stack: Stack, outcome: Outcome, *, quick: bool = False) -> dict[str, Any]:
    """Every class, at full scale unless ``quick``; returns the figures."""
    figures: dict[str, Any] = {}
    figures.update(label_names(stack, outcome))
    figures.update(wrong_typed_json(stack, outcome, 25_000 if quick else 250_000))
    figures.update(many_files(stack, outcome, 8 if quick else 32, 5 * 10**6 if quick else 10**7 - 10**4))
    figures.update(rgba_pngs(stack, outcome, 4_000_000 if quick else 39_600_000))
    figures.update(decoded_within_budget(stack, outcome, 2_500_000))
    figures.update(connection_flood(stack, outcome, 1_200 if quick else 3_000))
    env = {
        "GATEWAY_RATE_LIMIT_PER_SECOND": str(RATE),
        "GATEWAY_RATE_LIMIT_BURST": str(BURST),
        "GATEWAY_BODY_TIMEOUT_SECONDS": "3",
        "GATEWAY_BODY_DEADLINE_SECONDS": str(DEADLINE_S),
    }
    canary_env = {
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
        "GATEWAY_CANARY_P99_SLACK_SECONDS": "0",
        "GATEWAY_ADMIN_TOKEN": stack.admin_token,
        "GATEWAY_MODEL_CONTROL_TOKEN": control_token(stack),
        "GATEWAY_MAX_FILES": str(CANARY_ROWS),
        "GATEWAY_STATE_REFRESH_SECONDS": "1",
    }
    workdir = stack.workdir / "gateway-2"
    (workdir / "canary").mkdir(parents=True, exist_ok=True)
    with extra_gateway(stack.grpc_target, stack.config, workdir, env) as gateway:
        figures.update(slow_drip(gateway.url, outcome, 20))  # first: the rate limit would refuse it later
        figures.update(forwarded_for(gateway.url, outcome, 30))
    with extra_gateway(stack.grpc_target, stack.config, workdir / "canary", canary_env) as gateway:
        figures.update(canary_by_one_client(stack, outcome, gateway.url))
    return figures
