"""A rollout stack of ``half`` (TF Serving's half_plus_two, y = a*x + b) on real processes, shared by the
e2e tests of version admin: test_cluster_e2e, test_registry_e2e, test_canary_rule_e2e (replicas on loopback
ports) and test_netns_e2e (replicas in network namespaces: it starts its own, and uses the rest).

    write_config(root / "models.config", root / "half")            # version 1 pinned
    with serving(config, root, replicas=2, gateways="ab", env=...) as stack:
        admin(stack.gateways[0], "POST", ":promote", {"version": 2})
        converged_on(stack.gateways[0], {2})  # both replicas serve exactly version 2

Every replica polls the models.config and its model folders each second; every gateway takes its admin calls
with ``ADMIN_TOKEN`` and re-reads the desired state every 0.5 s. Waits are conditions with generous deadlines
(hang guards, never the verdict); unlike ``devtools.waiting``, an exception in a check propagates at once (a
check that asserts a reply's status fails the test where it happened).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devtools.procs import LOOPBACK, ServerProcess, free_port
from devtools.servers import Gateway, modelserver_process, start_gateway
from tests.gateway.conftest import ADMIN_TOKEN

__all__ = [
    "AUTH",
    "DEADLINE_S",
    "LATEST",
    "PINNED",
    "POLL_FLAGS",
    "Serving",
    "admin",
    "available",
    "converged_on",
    "gateway_env",
    "half_entry",
    "serving",
    "start_replica",
    "stopped",
    "wait_for",
    "write_config",
]

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEADLINE_S = 90.0
PINNED = "specific { versions: 1 }"
LATEST = "latest { num_versions: 1 }"
POLL_FLAGS = ("--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1")
_CONFIG = """model_config_list {
  config { name: "half" base_path: "%s" model_platform: "tensorflow"
           model_version_policy { %s } }
}
"""


def write_config(config: Path, base: Path, policy: str = PINNED) -> Path:
    """TF Serving's models.config with one model, ``half`` at ``base`` (version 1 pinned by default)."""
    config.write_text(_CONFIG % (base, policy), encoding="utf-8")
    return config


def wait_for(what: str, check: Callable[[], Any], deadline: float = DEADLINE_S, pause: float = 0.2) -> Any:
    """``check()``'s first truthy answer; AssertionError naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(pause)
    raise AssertionError(f"not reached within {deadline:.0f} s (a hang guard): {what}")


def start_replica(config: Path, port: int, log: Path) -> ServerProcess:
    """One replica on a fixed loopback port (a test may restart it on the same one), polling ``config``."""
    return modelserver_process(
        grpc_port=port, rest_port=None, log_path=log, model_config_file=config, extra_flags=POLL_FLAGS
    ).start()


def gateway_env(config: Path, targets: Sequence[str], **extra: str) -> dict[str, str]:
    """A gateway's settings: desired state in ``config``; several targets are ``half``'s replicas."""
    env = {
        "GATEWAY_MODEL_CONFIG_FILE": str(config),
        **({"GATEWAY_MODEL_REPLICAS": json.dumps({"half": list(targets)})} if len(targets) > 1 else {}),
        "GATEWAY_DEFAULT_MODEL_SERVER": targets[0],
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_STATE_REFRESH_SECONDS": "0.5",
    }
    return {**env, **extra}


@contextmanager
def stopped(gateways: list[Gateway], replicas: list[ServerProcess]) -> Iterator[None]:
    """Stop the gateways, then the replicas, however the block ends (the lists may grow inside it)."""
    try:
        yield
    finally:
        for gw in gateways:
            gw.process.stop()
        for replica in replicas:
            replica.stop()


@dataclass
class Serving:
    ports: list[int]
    replicas: list[ServerProcess]
    gateways: list[Gateway]

    @property
    def addresses(self) -> list[str]:
        return [f"{LOOPBACK}:{p}" for p in self.ports]


@contextmanager
def serving(
    config: Path, root: Path, *, replicas: int, gateways: str, env: dict[str, str] | None = None
) -> Iterator[Serving]:
    """``replicas`` model servers on free loopback ports (logs ``root/replica<i>.log``) and one gateway per
    letter of ``gateways`` (``root/gateway-<letter>.log``), each started at once (each loads TensorFlow)."""
    ports = [free_port() for _ in range(replicas)]
    started = Serving(ports, [], [])
    logs = [root / f"replica{i}.log" for i in range(replicas)]
    settings = gateway_env(config, started.addresses, **(env or {}))
    with stopped(started.gateways, started.replicas):
        with ThreadPoolExecutor(2) as pool:
            started.replicas.extend(
                pool.map(lambda i: start_replica(config, ports[i], logs[i]), range(replicas))
            )
            started.gateways.extend(
                pool.map(lambda n: start_gateway(settings, root / f"gateway-{n}.log"), gateways)
            )
        yield started


def admin(gw: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """An admin call on ``half`` (``path`` after its name: ``""``, ``":promote"``, ``"/canary"``, ...)."""
    return httpx.request(method, f"{gw.url}/v1/admin/models/half{path}", json=body, headers=AUTH, timeout=120)


def half_entry(gw: Gateway) -> dict[str, Any]:
    """``half``'s entry in the gateway's ``GET /v1/models``."""
    models = httpx.get(f"{gw.url}/v1/models", timeout=60).json()["models"]
    return next(m for m in models if m["name"] == "half")  # type: ignore[no-any-return]


def available(replica: dict[str, Any]) -> set[int]:
    """The AVAILABLE versions of one replica in such an entry."""
    return {v["version"] for v in replica["versions"] if v["state"] == "AVAILABLE"}


def converged_on(gw: Gateway, versions: set[int], replicas: int = 2) -> dict[str, Any]:
    """``half``'s entry once ``replicas`` replicas serve exactly ``versions`` and the gateway says converged;
    the hang guard's message shows the last entry seen."""
    last: list[dict[str, Any]] = []

    def check() -> dict[str, Any] | None:
        entry = half_entry(gw)
        last[:] = [entry]
        ok = entry["converged"] and all(available(r) == versions for r in entry["replicas"])
        return entry if ok and len(entry["replicas"]) == replicas else None

    try:
        return wait_for(f"{replicas} replicas serve exactly {versions}", check)  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {json.dumps(last[-1] if last else None)}") from None
