"""``make compose-smoke``: the deployed stack, end to end, in containers built on this machine.

1. Seeds a fresh model repository (a temporary MODELS_DIR): the newest published version of each model
   under ./models is copied; a model without one is trained and published by the ``export`` service.
2. Brings the stack up with our modelserver override (docker-compose.yml + docker-compose.modelserver.yml)
   under its own project name and free loopback ports, so it never touches a running stack; times it to
   healthy.
3. POSTs real Fashion-MNIST test images (PNG) through the gateway and checks the labels.
4. While a client keeps sending requests, publishes a new fashion version with the ``export`` service and
   checks that replies come to name the new version; then rolls back and returns to latest through the
   gateway's admin API - with no failed request throughout.
5. Version management across the two fashion replicas (serving-fashion, serving-fashion-2), still under
   traffic: a promote reaches both (GET /v1/models shows each replica and ``converged``); with
   serving-fashion-2 stopped, a promote is recorded in MODELS_DIR/config/fashion.config and the replica
   serves it as soon as it starts again; with serving-fashion-2 paused (``docker compose pause``: hung, not
   dead) requests keep being answered by the other replica (failover), a promote replies naming the paused
   replica as unconfirmed, and it converges once unpaused; back to latest.
6. Takes the stack down (also on failure, after printing the services' last log lines).

All traffic goes to 127.0.0.1. Figures land in .run/compose-smoke.json and are printed at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import text_format

from devtools.fashion import FASHION_LABELS, encode, fashion_test_images
from devtools.files import write_atomic
from devtools.procs import free_ports
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("fashion", "text", "housing")
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.modelserver.yml")
PROJECT = "tfserve-smoke"
IMAGE_TAG = os.environ.get("IMAGE_TAG", "0.1.0")
# Seeding trains one epoch on the full data (labels must come out right); the hot-swap version is a quick
# retrain on a slice: the point there is the swap, not the accuracy.
SEED_ARGS = ("--epochs", "1")
SWAP_ARGS = ("--epochs", "1", "--limit", "6000")
HEALTHY_TIMEOUT_S = 300
SWAP_TIMEOUT_S = 600
REQUEST_INTERVAL_S = 0.1


class SmokeFailure(RuntimeError):
    """A check of the smoke run failed; the message says which and what was seen."""


def step(message: str) -> None:
    print(f"== {message}", flush=True)


def latest_version(model_dir: Path) -> int | None:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=None)


def fashion_pngs(data_dir: Path, count: int) -> list[tuple[bytes, str]]:
    """The first ``count`` Fashion-MNIST test images as PNG bytes, with their true labels."""
    images = fashion_test_images(data_dir, count)
    return [(encode(image, "PNG"), FASHION_LABELS[label]) for image, label in images]


def reply_version(body: Any) -> int | None:
    """The version a gateway reply names: ``version`` at the top or under ``model`` / ``model_spec``."""
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("model"), body.get("model_spec")):
        if isinstance(holder, dict) and str(holder.get("version", "")).isdigit():
            return int(holder["version"])
    return None


def reply_top_labels(body: Any) -> list[str]:
    """The top label of each image in a classify reply (``predictions``/``results``: lists of label+score)."""
    rows = body.get("predictions") or body.get("results") or body.get("classifications") or []
    tops = []
    for row in rows:
        if isinstance(row, dict):
            candidates = row.get("top") or row.get("classes") or row.get("labels")
        else:
            candidates = row
        first = candidates[0] if candidates else None
        if isinstance(first, dict):
            tops.append(str(first.get("label")))
        elif isinstance(first, (list, tuple)):
            tops.append(str(first[0]))
        elif first is not None:
            tops.append(str(first))
    return tops


@dataclass
class Traffic:
    """A client that keeps classifying one image through the gateway and records every outcome."""

    url: str
    image: bytes
    outcomes: list[tuple[float, int, int | None, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    phase: str = "hot swap"  # the step under way, named in each failure's detail

    def run(self, deadline: float) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    reply = client.post(self.url, files={"file": ("item.png", self.image, "image/png")})
                    is_json = reply.headers.get("content-type", "").startswith("application/json")
                    body = reply.json() if is_json else {}
                    self.outcomes.append(
                        (
                            time.monotonic(),
                            reply.status_code,
                            reply_version(body),
                            "" if reply.status_code == 200 else f"{self.phase}: {reply.text[:200]}",
                        )
                    )
                except httpx.HTTPError as err:
                    self.outcomes.append((time.monotonic(), 0, None, f"{self.phase}: {err!r}"))
                time.sleep(REQUEST_INTERVAL_S)

    def failures(self) -> list[tuple[float, int, int | None, str]]:
        return [o for o in self.outcomes if o[1] != 200]


class Stack:
    """docker compose for the smoke project, with the environment that names its ports and directories."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.base = ["docker", "compose", "-p", PROJECT]
        for name in COMPOSE_FILES:
            self.base += ["-f", str(ROOT / name)]

    def run(self, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        out = subprocess.PIPE if quiet else None
        result = subprocess.run(
            [*self.base, *args], env=self.env, cwd=ROOT, text=True, stdout=out, stderr=out
        )
        if check and result.returncode != 0:
            raise SmokeFailure(
                f"`docker compose {' '.join(args)}` exited {result.returncode}"
                + (f": {result.stderr[-2000:]}" if quiet else "")
            )
        return result

    def export(self, model: str, *args: str) -> None:
        self.run(
            "--profile",
            "export",
            "run",
            "--rm",
            "--no-deps",
            "export",
            model,
            "--models-dir",
            "/models",
            *args,
        )


def seed_models(models_dir: Path, stack: Stack) -> dict[str, str]:
    shutil.copy2(ROOT / "models" / "models.config", models_dir / "models.config")
    (models_dir / "config").mkdir(mode=0o755)
    for model in MODELS:  # each model's desired state: its replicas poll it, the gateway writes it
        target = models_dir / "config" / f"{model}.config"
        shutil.copy2(ROOT / "models" / "config" / f"{model}.config", target)
        target.chmod(0o644)
    seeded = {}
    for model in MODELS:
        source = ROOT / "models" / model
        version = latest_version(source) if source.is_dir() else None
        if version is not None:
            shutil.copytree(source / str(version), models_dir / model / str(version))
            seeded[model] = f"copied version {version} from ./models"
        else:
            step(f"no published '{model}' under ./models: exporting one with the export service")
            stack.export(model, *SEED_ARGS)
            seeded[model] = f"exported version {latest_version(models_dir / model)} in a container"
    return seeded


def wait_swap(traffic: Traffic, new_version: int) -> float:
    """Seconds from now until replies name ``new_version`` (five in a row); fails on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < SWAP_TIMEOUT_S:
        recent = traffic.outcomes[-5:]
        if len(recent) == 5 and all(o[2] == new_version for o in recent):
            return time.monotonic() - start
        time.sleep(0.5)
    seen = sorted({o[2] for o in traffic.outcomes if o[2] is not None})
    raise SmokeFailure(f"replies never named version {new_version} within {SWAP_TIMEOUT_S}s (saw {seen})")


def admin(gateway: str, token: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /v1/admin/models/fashion:<action> with the admin token; fails unless it answers 200."""
    reply = httpx.post(
        f"{gateway}/v1/admin/models/fashion:{action}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    if reply.status_code != 200:
        raise SmokeFailure(f"admin {action} answered {reply.status_code}: {reply.text[:500]}")
    return reply.json()  # type: ignore[no-any-return]


def fashion_cluster(gateway: str) -> dict[str, Any]:
    models = httpx.get(f"{gateway}/v1/models", timeout=30).json()["models"]
    return next(m for m in models if m["name"] == "fashion")


def wait_converged(gateway: str, version: int) -> float:
    """Seconds until both fashion replicas serve exactly ``version`` (GET /v1/models); fails on timeout."""
    start = time.monotonic()
    seen: dict[str, Any] = {}
    while time.monotonic() - start < SWAP_TIMEOUT_S:
        seen = fashion_cluster(gateway)
        served = [
            {v["version"] for v in r["versions"] if v["state"] == "AVAILABLE"} for r in seen["replicas"]
        ]
        if seen["converged"] and len(served) == 2 and all(s == {version} for s in served):
            return time.monotonic() - start
        time.sleep(0.5)
    raise SmokeFailure(
        f"the fashion replicas did not converge on version {version}: {json.dumps(seen)[:800]}"
    )


def pinned_versions(config_file: Path) -> list[int] | None:
    """The versions ``config_file`` (TF Serving's models.config text format) pins for fashion, or None."""
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(config_file.read_text(), config)
    for entry in config.model_config_list.config:
        if entry.name == "fashion" and entry.model_version_policy.HasField("specific"):
            return sorted(entry.model_version_policy.specific.versions)
    return None


def resent_to(stack: Stack, address: str) -> bool:
    """Whether the gateway's reconciler re-sent the desired config to ``address`` (its drift log line): when
    it did not, the replica converged from the config file alone, which it reads when it starts."""
    logs = stack.run("logs", "--no-log-prefix", "gateway", quiet=True).stdout
    return any("drifted" in line and address in line for line in logs.splitlines())


def image_sizes() -> dict[str, str]:
    sizes = {}
    for name in ("gateway", "modelserver", "export"):
        image = f"tfserve/{name}:{IMAGE_TAG}"
        got = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", image], text=True, capture_output=True
        )
        if got.returncode != 0:
            raise SmokeFailure(f"image {image} is missing: run `make docker-images`")
        sizes[image] = f"{int(got.stdout) / 1e6:.0f} MB"
    return sizes


def smoke(work: Path, data_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"images": image_sizes()}
    models_dir = work / "models"
    models_dir.mkdir()
    models_dir.chmod(0o755)  # the servers run as uid 10001
    names = (
        "FASHION_GRPC_PORT",
        "FASHION_REST_PORT",
        "FASHION2_GRPC_PORT",
        "FASHION2_REST_PORT",
        "TEXT_GRPC_PORT",
        "TEXT_REST_PORT",
        "HOUSING_GRPC_PORT",
        "HOUSING_REST_PORT",
        "GATEWAY_PORT",
    )
    ports = dict(zip(names, map(str, free_ports(len(names))), strict=True))
    env = {
        **os.environ,
        **ports,
        "MODELS_DIR": str(models_dir),
        "DATA_DIR": str(data_dir),
        "HOST_UID": str(os.getuid()),
        "HOST_GID": str(os.getgid()),
        "GATEWAY_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "FILE_SYSTEM_POLL_WAIT_SECONDS": "1",
        "MODEL_CONFIG_POLL_WAIT_SECONDS": "1",
        # host networking: listen on loopback only, where all of the smoke's traffic goes
        "GATEWAY_HOST": "127.0.0.1",
        "MODELSERVER_BIND_HOST": "127.0.0.1",
    }
    for name in ("gateway", "modelserver", "export"):
        env[f"{name.upper()}_IMAGE"] = f"tfserve/{name}:{IMAGE_TAG}"
    env.pop("COMPOSE_FILE", None)
    stack = Stack(env)
    gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"

    step("seeding the model repository " + str(models_dir))
    result["seeded"] = seed_models(models_dir, stack)
    try:
        step("compose up (our modelserver override), waiting for every service to be healthy")
        start = time.monotonic()
        stack.run("up", "-d", "--no-build", "--wait", "--wait-timeout", str(HEALTHY_TIMEOUT_S))
        result["seconds_to_healthy"] = round(time.monotonic() - start, 1)
        stack.run("ps")

        step("classifying real Fashion-MNIST test images through the gateway")
        samples = fashion_pngs(data_dir, 10)
        url = f"{gateway}/v1/models/fashion:classify"
        with httpx.Client(timeout=30) as client:
            reply = client.post(
                url, files=[("file", (f"{i}.png", png, "image/png")) for i, (png, _) in enumerate(samples)]
            )
        if reply.status_code != 200:
            raise SmokeFailure(f"classify answered {reply.status_code}: {reply.text[:500]}")
        body = reply.json()
        tops, truth = reply_top_labels(body), [label for _, label in samples]
        correct = sum(t == g for t, g in zip(tops, truth, strict=False))
        old_version = reply_version(body)
        print(f"   version {old_version}: {correct}/{len(truth)} correct; top labels {tops}")
        if old_version is None or len(tops) != len(truth) or correct < len(truth) // 2:
            raise SmokeFailure(f"unexpected classify reply: {json.dumps(body)[:800]}")
        result["classify"] = {"version": old_version, "correct": f"{correct}/{len(truth)}"}

        step("hot swap: publishing a new fashion version with the export service while traffic flows")
        traffic = Traffic(url, samples[0][0])
        client_thread = threading.Thread(target=traffic.run, args=(time.monotonic() + 3 * SWAP_TIMEOUT_S,))
        client_thread.start()
        try:
            start = time.monotonic()
            stack.export("fashion", *SWAP_ARGS)
            result["export_seconds"] = round(time.monotonic() - start, 1)
            new_version = latest_version(models_dir / "fashion")
            if new_version is None or new_version <= old_version:
                raise SmokeFailure(f"the export published no version above {old_version}")
            result["seconds_to_swap_after_export_exit"] = round(wait_swap(traffic, new_version), 1)

            step("version management through the gateway's admin API (HandleReloadConfigRequest)")
            token = env["GATEWAY_ADMIN_TOKEN"]
            traffic.phase = "rollback / latest"
            refused = httpx.post(f"{gateway}/v1/admin/models/fashion:rollback", timeout=30)
            if refused.status_code != 401:
                raise SmokeFailure(f"admin without a token answered {refused.status_code}, expected 401")
            admin(gateway, token, "rollback")
            result["seconds_to_rollback"] = round(wait_swap(traffic, old_version), 1)
            admin(gateway, token, "latest")
            result["seconds_back_to_latest"] = round(wait_swap(traffic, new_version), 1)

            step("two fashion replicas: promote reaches both; a stopped replica converges when it starts")
            traffic.phase = "promote on both replicas"
            shown = fashion_cluster(gateway)
            if len(shown["replicas"]) != 2:
                raise SmokeFailure(f"GET /v1/models does not show 2 fashion replicas: {shown}")
            admin(gateway, token, "promote", {"version": old_version})
            result["seconds_to_converge_promote"] = round(wait_converged(gateway, old_version), 1)
            wait_swap(traffic, old_version)
            traffic.phase = "promote with serving-fashion-2 stopped, then started"
            stack.run("stop", "serving-fashion-2")
            promoted = admin(gateway, token, "promote", {"version": new_version})
            if sorted(r["reachable"] for r in promoted["replicas"]) != [False, True]:
                raise SmokeFailure(f"a promote with a replica stopped must report it: {promoted['replicas']}")
            pinned = pinned_versions(models_dir / "config" / "fashion.config")
            if pinned != [new_version]:
                raise SmokeFailure(
                    f"config/fashion.config pins {pinned} after the promote, not [{new_version}]"
                )
            stack.run("start", "serving-fashion-2")
            result["seconds_to_converge_restarted_replica"] = round(wait_converged(gateway, new_version), 1)
            result["restarted_replica_resent_by_gateway"] = resent_to(
                stack, f"127.0.0.1:{ports['FASHION2_GRPC_PORT']}"
            )
            wait_swap(traffic, new_version)

            step("a fashion replica paused under load: failover, admin names it, it converges when unpaused")
            traffic.phase = "serving-fashion-2 paused"
            stack.run("pause", "serving-fashion-2")
            try:
                started = time.monotonic()
                promoted = admin(gateway, token, "promote", {"version": old_version})
                result["seconds_admin_with_a_paused_replica"] = round(time.monotonic() - started, 1)
                if len(promoted.get("unconfirmed", [])) != 1:
                    raise SmokeFailure(f"a promote with a replica paused must name it: {promoted}")
                time.sleep(3)  # traffic keeps flowing meanwhile: the other replica answers it
            finally:
                stack.run("unpause", "serving-fashion-2")
            result["seconds_to_converge_unpaused_replica"] = round(wait_converged(gateway, old_version), 1)
            wait_swap(traffic, old_version)
            traffic.phase = "back to latest"
            admin(gateway, token, "latest")
            time.sleep(2)  # a little traffic after the last switch, while the old version unloads
        finally:
            traffic.stop.set()
            client_thread.join()
        failures = traffic.failures()
        versions = [o[2] for o in traffic.outcomes]
        answered_by = {str(v): versions.count(v) for v in sorted(set(versions), key=str)}
        result["traffic"] = {
            "requests": len(traffic.outcomes),
            "failed": len(failures),
            "answered_by": answered_by,
        }
        if failures:
            raise SmokeFailure(f"{len(failures)} failed request(s) during the switches: {failures[:5]}")
        step(
            f"{old_version} -> {new_version} (export), -> {old_version} (rollback), -> {new_version} "
            f"(latest), -> {old_version} (promote, both replicas), -> {new_version} (promote with a replica "
            f"stopped), -> {old_version} (promote with a replica paused), latest: {len(traffic.outcomes)} "
            "requests, none failed"
        )
        result["outcome"] = "passed"
        return result
    except Exception:
        stack.run("ps", check=False)
        stack.run("logs", "--tail", "40", check=False)
        logs = stack.run("logs", "--timestamps", check=False, quiet=True).stdout or ""
        (ROOT / ".run").mkdir(exist_ok=True)
        write_atomic(ROOT / ".run" / "compose-smoke-failed.log", logs)
        step("every service's full log: .run/compose-smoke-failed.log")
        raise
    finally:
        step("compose down")
        stack.run(
            "--profile", "export", "down", "--volumes", "--remove-orphans", "--timeout", "20", check=False
        )


def main() -> int:
    data_dir = Path(os.environ.get("DATA_DIR") or "")
    if not (data_dir / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        print(
            "error: set DATA_DIR to the folder holding fashion-mnist/ "
            "(the Makefile does when ../shared/data exists)",
            file=sys.stderr,
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="tfserve-smoke-", dir="/var/tmp"))
    started = time.monotonic()
    try:
        result = smoke(work, data_dir)
    except SmokeFailure as err:
        print(f"compose-smoke FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["total_seconds"] = round(time.monotonic() - started, 1)
    out = ROOT / ".run" / "compose-smoke.json"
    out.parent.mkdir(exist_ok=True)
    write_atomic(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("compose-smoke passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
