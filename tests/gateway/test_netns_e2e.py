"""End to end across a real network: two ``python -m modelserver`` replicas of ``half``, each in its own
network namespace with its own address (a veth pair to the host, ``ip netns`` and ``ip link`` from iproute2),
and one gateway on the host in front of both. Faults are real: a replica's link cut (``ip link set down``)
and ``tc netem`` total loss or a long delay, during steady traffic, a promote and a canary.

Figures (failed client requests, p99 during the fault, seconds until the lost replica is out of rotation and
back in after healing, admin reply time with a partitioned replica) go to the test log; with
``TFSERVE_NETNS_RESULTS=<file>`` also to that JSON file (reliability/results/netns.json holds one run).
The only assertions are outcomes: 0 failed requests, the replica reported unconfirmed, convergence after
healing. Waits are conditions with generous deadlines (hang guards). Needs root and ``ip netns add``;
skipped with the reason where they are not permitted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.procs import REPO_ROOT, ServerProcess
from devtools.servers import MODELSERVER_ENV, Gateway, start_gateway
from devtools.tiny_models import half_plus_two
from tests.gateway.half_stack import admin, converged_on, gateway_env, half_entry, wait_for, write_config

pytestmark = pytest.mark.e2e
log = logging.getLogger("tests.netns")
RECORD = {"records": [{"x": 2.0}]}
PORT = 8500  # each replica has its own address: both use the same port
TRAFFIC_WORKERS = 3
FAULT_SECONDS = 3.0


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def _must(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args)}: {result.stderr.strip()}")


@dataclass
class Host:
    """One network namespace with a veth pair to the host: ``outside`` (host end) and the replica's address."""

    ns: str
    outside: str
    address: str

    @property
    def target(self) -> str:
        return f"{self.address}:{PORT}"


@contextlib.contextmanager
def _hosts(count: int) -> Iterator[list[Host]]:
    """``count`` namespaces 10.<n>.<i>.2 behind host ends 10.<n>.<i>.1; removed on exit (deleting a namespace
    deletes its veth end, and with it the host end)."""
    if os.geteuid() != 0:
        pytest.skip("network-namespace tests need root (ip netns add); the loopback cluster tests still run")
    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    probe = _ip("netns", "add", f"tfsp{tag}")
    if probe.returncode != 0:
        pytest.skip(f"ip netns add is not permitted here: {probe.stderr.strip()}")
    _ip("netns", "del", f"tfsp{tag}")
    net = 100 + random.randrange(150)
    hosts: list[Host] = []
    try:
        for i in range(count):
            host = Host(f"tfs{tag}n{i}", f"tv{tag}h{i}", f"10.{net}.{i}.2")
            hosts.append(host)
            inside = f"tv{tag}i{i}"
            _must(_ip("netns", "add", host.ns))
            _must(_ip("link", "add", host.outside, "type", "veth", "peer", "name", inside))
            _must(_ip("link", "set", inside, "netns", host.ns))
            _must(_ip("addr", "add", f"10.{net}.{i}.1/24", "dev", host.outside))
            _must(_ip("link", "set", host.outside, "up"))
            for args in (
                ("addr", "add", f"{host.address}/24", "dev", inside),
                ("link", "set", inside, "up"),
                ("link", "set", "lo", "up"),
            ):
                _must(_ip("-n", host.ns, *args))
        yield hosts
    finally:
        for host in hosts:
            _ip("link", "del", host.outside)
            _ip("netns", "del", host.ns)


def _reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _replica(host: Host, config: Path, log_path: Path) -> ServerProcess:
    command = [
        "ip", "netns", "exec", host.ns, sys.executable, "-m", "modelserver", f"--port={PORT}",
        f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1",
        "--file_system_poll_wait_seconds=1",
    ]  # fmt: skip
    env = {**MODELSERVER_ENV, "MODELSERVER_BIND_HOST": host.address, "PYTHONPATH": str(REPO_ROOT)}
    process = ServerProcess(
        command, name="modelserver", log_path=log_path, env=env, ready=lambda: _reachable(host.address, PORT)
    )
    return process.start()


@dataclass
class Net:
    root: Path
    config: Path
    hosts: list[Host]
    replicas: list[ServerProcess]
    gateway: Gateway
    figures: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("netns")
    half_plus_two(root / "half" / "1")
    half_plus_two(root / "half" / "2", b=3.0)
    config = write_config(root / "models.config", root / "half")
    with _hosts(2) as hosts:
        replicas: list[ServerProcess] = []
        gateway: Gateway | None = None
        try:
            with ThreadPoolExecutor(2) as pool:
                replicas = list(pool.map(lambda i: _replica(hosts[i], config, root / f"r{i}.log"), range(2)))
            env = gateway_env(
                config,
                [h.target for h in hosts],
                GATEWAY_TIMEOUT_SECONDS="20",
                GATEWAY_CANARY_MAX_P99_RATIO="1000",  # no clock decides a test
                GATEWAY_CANARY_P99_SLACK_SECONDS="60",
            )
            gateway = start_gateway(env, root / "gateway.log")
            figures: dict[str, Any] = {"replicas": 2, "gateways": 1, "fault_seconds": FAULT_SECONDS}
            yield Net(root, config, hosts, replicas, gateway, figures)
        finally:
            if gateway is not None:
                gateway.process.stop()
            for replica in replicas:
                replica.stop()
    results = os.environ.get("TFSERVE_NETNS_RESULTS")
    if results:
        Path(results).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _in_rotation(net: Net, target: str) -> float | None:
    text = httpx.get(f"{net.gateway.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_replica_in_rotation" and sample.labels.get("server") == target:
                return sample.value
    return None


def _upstream(net: Net, target: str) -> dict[str, float]:
    """Calls the gateway made to one replica: ``Predict`` (all) and ``<method>:<code>`` (failed)."""
    found: dict[str, float] = {}
    text = httpx.get(f"{net.gateway.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("server") != target:
                continue
            if sample.name == "gateway_upstream_errors_total":
                key = f"{sample.labels['method']}:{sample.labels['code']}"
            elif sample.name == "gateway_upstream_seconds_count" and sample.labels["method"] == "Predict":
                key = "Predict"
            else:
                continue
            found[key] = found.get(key, 0) + sample.value
    return found


class Traffic:
    """Steady Predicts through the gateway from a few threads until stopped; every outcome recorded."""

    def __init__(self, net: Net) -> None:
        self.url = f"{net.gateway.url}/v1/models/half:predict"
        self.samples: list[tuple[float, float, bool, str]] = []  # start, seconds, ok, version or error
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(TRAFFIC_WORKERS)]

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    reply = client.post(self.url, json=RECORD)
                    ok, what = reply.status_code == 200, str(reply.json().get("version", reply.text[:200]))
                except httpx.HTTPError as exc:
                    ok, what = False, repr(exc)
                self.samples.append((started, time.monotonic() - started, ok, what))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def failed(self) -> list[str]:
        return [what for _, _, ok, what in self.samples if not ok]

    def _during(self, start: float, end: float) -> list[float]:
        """Seconds of every request in flight at some point between ``start`` and ``end``."""
        return sorted(s for t, s, _, _ in self.samples if t < end and t + s > start)

    def slowest(self, start: float, end: float) -> float:
        return round(max(self._during(start, end), default=0.0), 3)

    def p99(self, start: float, end: float) -> float:
        during = self._during(start, end)
        return round(during[max(0, math.ceil(0.99 * len(during)) - 1)], 3) if during else 0.0


def _tc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tc", *args], capture_output=True, text=True, timeout=30, check=False)


# netem when the kernel has it; else the closest qdiscs every kernel has: a FIFO that holds no packet (total
# loss) and a token bucket at 2 kbit/s (a link so slow that every call waits seconds).
NETEM = {"netem_loss": ["netem", "loss", "100%"], "netem_delay": ["netem", "delay", "3000ms"]}
FALLBACK = {
    "netem_loss": ["pfifo", "limit", "0"],
    "netem_delay": ["tbf", "rate", "2kbit", "burst", "1600", "latency", "60s"],
}


@contextlib.contextmanager
def _fault(kind: str, host: Host, figures: dict[str, Any]) -> Iterator[None]:
    """Cut, drop or slow the traffic from the host to ``host`` (egress of the host's veth end)."""
    if kind == "link_down":
        _must(_ip("link", "set", host.outside, "down"))
        figures["emulation"] = "ip link set down"
        try:
            yield
        finally:
            _must(_ip("link", "set", host.outside, "up"))
        return
    added = _tc("qdisc", "add", "dev", host.outside, "root", *NETEM[kind])
    figures["emulation"] = " ".join(NETEM[kind])
    if added.returncode != 0 and "unknown" in added.stderr:  # a kernel without sch_netem
        added = _tc("qdisc", "add", "dev", host.outside, "root", *FALLBACK[kind])
        figures["emulation"] = f"{' '.join(FALLBACK[kind])} (this kernel has no netem)"
    if added.returncode != 0:
        raise RuntimeError(f"tc qdisc add on {host.outside}: {added.stderr.strip()}")
    try:
        yield
    finally:
        _tc("qdisc", "del", "dev", host.outside, "root")


def _version_one(net: Net) -> None:
    half = half_entry(net.gateway)
    if half["canary"] is not None:
        assert admin(net.gateway, "DELETE", "/canary").status_code == 200
    assert admin(net.gateway, "POST", ":promote", {"version": 1}).status_code == 200
    converged_on(net.gateway, {1})
    target = net.hosts[1].target
    wait_for("the replica back in rotation", lambda: _in_rotation(net, target) in (None, 1.0), pause=0.1)


@pytest.mark.parametrize("kind", ["link_down", "netem_loss", "netem_delay"])
def test_one_of_two_replicas_cut_off_during_steady_traffic_fails_no_request(net: Net, kind: str) -> None:
    """The gateway stops routing to the lost replica (a short per-attempt deadline, then passive and active
    health) and retries what was in flight on the other one; it takes the replica back once healed. An admin
    change during the fault (a promote with the link down, a canary under total loss) replies naming the
    lost replica as unconfirmed, and converges after healing."""
    _version_one(net)
    lost = net.hosts[1]
    figures: dict[str, Any] = {}
    before = {h.target: _upstream(net, h.target) for h in net.hosts}
    with Traffic(net) as traffic:
        time.sleep(1.0)  # steady state first
        with _fault(kind, lost, figures):
            cut = time.monotonic()
            wait_for(
                "the lost replica out of rotation", lambda: _in_rotation(net, lost.target) == 0.0, pause=0.1
            )
            figures["seconds_until_out_of_rotation"] = round(time.monotonic() - cut, 2)
            if kind in ("link_down", "netem_loss"):
                path, body = (":promote", {"version": 2}) if kind == "link_down" else ("/canary", None)
                body = body or {"version": 2, "weight": 50}
                started = time.monotonic()
                reply = admin(net.gateway, "POST" if kind == "link_down" else "PUT", path, body)
                figures["admin_reply_seconds"] = round(time.monotonic() - started, 2)
                assert reply.status_code == 200, reply.text
                ids = {r["address"]: r["id"] for r in reply.json()["replicas"]}
                assert ids[lost.target] in reply.json()["unconfirmed"], reply.json()
            time.sleep(max(0.0, FAULT_SECONDS - (time.monotonic() - cut)))
            healed = time.monotonic()
        wait_for(
            "the healed replica back in rotation", lambda: _in_rotation(net, lost.target) == 1.0, pause=0.1
        )
        figures["seconds_until_back_in_rotation"] = round(time.monotonic() - healed, 2)
        time.sleep(1.0)
    for name, host in zip(("kept", "lost"), net.hosts, strict=True):
        calls = _upstream(net, host.target)
        # Predict: calls it answered or failed; <method>:<code>: calls that failed there (retried elsewhere)
        figures[f"calls_to_the_{name}_replica"] = {
            k: v - before[host.target].get(k, 0)
            for k, v in calls.items()
            if v > before[host.target].get(k, 0)
        }
    figures["requests"] = len(traffic.samples)
    figures["failed_requests"] = len(traffic.failed())
    figures["p99_seconds_during_fault"] = traffic.p99(cut, healed)
    figures["p99_seconds_before_fault"] = traffic.p99(0.0, cut)
    figures["slowest_seconds_during_fault"] = traffic.slowest(cut, healed)  # an attempt cut, then failover
    log.warning("netns %s: %s", kind, figures)
    print(f"netns {kind}: {figures}")
    net.figures[kind] = figures
    assert traffic.failed() == [], traffic.failed()[:5]
    if kind == "link_down":
        assert (
            converged_on(net.gateway, {2})["answers"] == 2
        )  # the partitioned replica caught up after healing
    if kind == "netem_loss":
        assert converged_on(net.gateway, {1, 2})["canary"]["version"] == 2
