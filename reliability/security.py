"""Security: admin authentication, path traversal through model names / versions / labels, no internals in
replies, non-root containers, request size and rate limits - all against the running processes, except the
container users, which are read from the Dockerfile and compose files the images are built from."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from reliability.outcome import Outcome
from reliability.replies import error_message, leaks
from reliability.stack import Stack, extra_gateway

__all__ = [
    "RATE_LIMIT_ENV",
    "admin_auth",
    "container_users",
    "rate_limit",
    "replies",
    "root_containers",
    "run",
    "size_limit",
    "traversal",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
# The gateway's rate limit as the suite configures it: a small bucket so a burst of 60 must be cut.
RATE_LIMIT_ENV = {"GATEWAY_RATE_LIMIT_PER_SECOND": "5", "GATEWAY_RATE_LIMIT_BURST": "10"}
# Bytes that would show a file outside the model repository was read.
_FILE_MARKERS = ("model_config_list", "root:x:0:0", "saved_model", "[core]")

TRAVERSAL_PATHS: tuple[tuple[str, str], ...] = (
    ("GET", "/v1/models/.."),
    ("GET", "/v1/models/%2e%2e"),
    ("GET", "/v1/models/..%2Fmodels.config"),
    ("GET", "/v1/models/..%2F..%2F..%2Fetc%2Fpasswd"),
    ("GET", "/v1/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
    ("GET", "/v1/models/fashion%2F..%2F..%2Fmodels.config"),
    ("GET", "/v1/models/fashion%00"),
    ("GET", "/v1/models/fashion?version=0"),
    ("GET", "/v1/models/fashion?version=-1"),
    ("GET", "/v1/models/fashion?label=..%2F1"),
    ("POST", "/v1/models/..%2Ftext:classify"),
    ("POST", "/v1/models/text:classify?version=..%2F1"),
    ("POST", "/v1/models/text:classify?label=..%2F..%2Fetc"),
    ("POST", "/v1/models/text%2F..%2F..%2Fetc:classify"),
    ("GET", "/v1/admin/models/..%2F..%2Fetc"),
    ("POST", "/v1/admin/models/..%2Ftext:promote"),
    ("PUT", "/v1/admin/models/text/labels/..%2F..%2Fx"),
    ("GET", "/v1/models/fashion/versions/..%2F..%2Fmodels.config/card"),
    ("GET", "/v1/models/fashion/versions/1%2F..%2F..%2F..%2Fetc%2Fpasswd/card"),
    ("GET", "/v1/models/fashion/versions/-1/curves.png"),
    ("GET", "/v1/models/..%2Ffashion/versions/1/card"),
    ("GET", "/v1/models/fashion%2F..%2Ftext/versions/1/card"),
    ("GET", "/v1/models/fashion/versions/1%00/card"),
    ("GET", "/v1/models/fashion/versions/99999999999999999999/card"),
    ("GET", "/static/..%2F..%2Fsettings.py"),
    ("GET", "/..%2F..%2Fetc%2Fpasswd"),
)
REST_TRAVERSAL_PATHS: tuple[str, ...] = (
    "/v1/models/..",
    "/v1/models/..%2F..%2Fetc%2Fpasswd",
    "/v1/models/%2e%2e%2fmodels.config/metadata",
    "/v1/models/text/versions/..%2F1",
    "/v1/models/text/labels/..%2F..%2Fetc",
    "/v1/models/text%2F..%2F..%2Fetc/metadata",
)


def _stage_users(dockerfile: Path) -> dict[str, str]:
    """The user each Dockerfile stage ends with ("" = never set = root); a stage inherits its base's."""
    users: dict[str, str] = {}
    stage, current = "", ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        match = re.match(r"(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line)
        if match:
            if stage:
                users[stage] = current
            stage, current = match.group(2) or match.group(1), users.get(match.group(1), "")
        elif re.match(r"(?i)^USER\s+", line):
            current = line.split(None, 1)[1]
    if stage:
        users[stage] = current
    return users


def container_users(root: Path = REPO_ROOT) -> dict[str, str]:
    """The user every container of the compose files runs as: ``user:`` when set, else the last USER of
    the Dockerfile target it is built from, else "" (the image's default: root for tensorflow/serving)."""
    stages = _stage_users(root / "docker" / "Dockerfile")
    users: dict[str, str] = {}
    for compose in sorted(root.glob("docker-compose*.yml")):
        services = (yaml.safe_load(compose.read_text(encoding="utf-8")) or {}).get("services") or {}
        for name, service in services.items():
            if not isinstance(service, dict):
                continue
            build = service.get("build")
            build = build if isinstance(build, dict) else {}
            target = build.get("target", "")
            user = str(service["user"]) if "user" in service else stages.get(target, "")
            image = str(service.get("image", "")) or f"Dockerfile:{target}"
            users[f"{compose.name}:{name} ({image})"] = (
                "root (privileged)" if service.get("privileged") else user
            )
    for manifest in sorted((root / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
            pod = (
                ((doc or {}).get("spec") or {}).get("template", {}).get("spec")
                if isinstance(doc, dict)
                else None
            )
            if isinstance(pod, dict):
                context = pod.get("securityContext") or {}
                non_root = context.get("runAsNonRoot") is True and context.get("runAsUser", 1) != 0
                name = (doc.get("metadata") or {}).get("name", doc.get("kind", "?"))
                users[f"k8s:{manifest.name}:{name}"] = str(context.get("runAsUser")) if non_root else ""
    for target in ("gateway", "modelserver", "export"):
        if target in stages:
            users[f"Dockerfile:{target}"] = stages[target]
    return users


def root_containers(users: dict[str, str]) -> list[str]:
    return sorted(name for name, user in users.items() if _is_root(user))


def _is_root(user: str) -> bool:
    return user.split(":")[0].strip() in ("", "root", "0") or "privileged" in user


def admin_auth(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    token = stack.admin_token
    attempts: list[tuple[str, dict[str, str], int]] = [
        ("no Authorization header", {}, 401),
        ("bearer without a token", {"Authorization": "Bearer"}, 401),
        ("wrong token", {"Authorization": "Bearer " + "x" * len(token)}, 401),
        ("token prefix", {"Authorization": "Bearer " + token[:-1]}, 401),
        ("token with extra byte", {"Authorization": "Bearer " + token + "0"}, 401),
        ("Basic scheme", {"Authorization": "Basic " + token}, 401),
        ("token in another header", {"X-Admin-Token": token}, 401),
        ("token as query", {}, 401),
        ("right token", {"Authorization": "Bearer " + token}, 200),
    ]
    refused = 0
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        for name, headers, expected in attempts:
            path = "/v1/admin/models/text" + (f"?token={token}" if name == "token as query" else "")
            response = client.get(path, headers=headers)
            ok = response.status_code == expected and (expected < 400 or error_message(response) is not None)
            refused += ok and expected == 401
            outcome.cases.append(
                {"case": f"admin: {name}", "status": response.status_code, "expected": expected}
            )
            outcome.check(
                ok, f"admin {name}: got {response.status_code} {response.text[:160]!r}, expected {expected}"
            )
            outcome.check(token not in response.text, f"admin {name}: the reply contains the admin token")
            for verb in (":promote", ":rollback", ":latest") if expected == 401 else ():
                write = client.post(f"/v1/admin/models/text{verb}", headers=headers, json={"version": 1})
                outcome.check(write.status_code == 401, f"admin {name} POST {verb}: got {write.status_code}")
    source = (REPO_ROOT / "gateway" / "routes" / "admin.py").read_text(encoding="utf-8")
    constant_time = "hmac.compare_digest" in source or "secrets.compare_digest" in source
    outcome.check(constant_time, "the admin token is not compared in constant time (hmac.compare_digest)")
    return {
        "bad_credentials_refused": refused,
        "bad_credentials_tried": len(attempts) - 1,
        "constant_time": constant_time,
    }


def traversal(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    refused = 0
    cases = [("gateway", m, p) for m, p in TRAVERSAL_PATHS] + [
        ("modelserver", "GET", p) for p in REST_TRAVERSAL_PATHS
    ]
    for target, method, path in cases:
        base = stack.gateway_url if target == "gateway" else stack.rest_url
        with httpx.Client(base_url=base, timeout=30) as client:
            body = {"texts": ["hello"]} if ":classify" in path else {"version": 1}
            response = client.request(method, path, headers=admin, json=body if method != "GET" else None)
        text = response.text
        leaked_file = [m for m in _FILE_MARKERS if m in text]
        ok = 400 <= response.status_code < 500 and not leaked_file
        refused += ok
        outcome.cases.append(
            {"case": f"traversal: {method} {path}", "target": target, "status": response.status_code}
        )
        outcome.check(
            ok, f"{target} {method} {path}: got {response.status_code} {text[:160]!r} (want a 4xx, no file)"
        )
    return {"traversal_tried": len(cases), "traversal_refused": refused}


def replies(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """Public replies (and error replies) must not carry tracebacks, addresses, paths or the token."""
    probes = [
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/fashion", None),
        ("GET", "/v1/models/nope", None),
        ("GET", "/readyz", None),
        ("POST", "/v1/models/text:classify?version=999", {"texts": ["x"]}),
        ("POST", "/v1/models/fashion:classify", {"texts": ["x"]}),
        ("POST", "/v1/models/housing:regress", {"records": [{"median_income": "x"}]}),
        ("GET", "/nope", None),
        ("DELETE", "/v1/models/text:classify", None),
    ]
    clean = 0
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        for method, path, body in probes:
            response = client.request(method, path, json=body)
            found = leaks(response.text, [stack.admin_token, str(stack.repo)])
            clean += not found
            outcome.check(not found, f"gateway {method} {path}: reply leaks {found}: {response.text[:200]!r}")
    return {"replies_checked": len(probes), "replies_clean": clean}


def size_limit(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    big = b'{"texts": ["' + b"a" * (11 * 1024 * 1024) + b'"]}'
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        size = client.post(
            "/v1/models/text:classify", content=big, headers={"content-type": "application/json"}
        )
    outcome.check(size.status_code == 413, f"11 MiB JSON body: got {size.status_code}, expected 413")
    return {"oversized_body_status": size.status_code}


def rate_limit(stack: Stack, outcome: Outcome, workdir: Path) -> dict[str, Any]:
    """A second gateway with ``RATE_LIMIT_ENV``: a burst of 60 must be cut with 429 + Retry-After, probes
    never limited, and service back once the bucket refills."""
    env = dict(RATE_LIMIT_ENV)
    statuses: list[int] = []
    retry_after = message = ""
    with (
        extra_gateway(stack.grpc_target, stack.config, workdir, env) as gateway,
        gateway.client() as client,
    ):
        for _ in range(60):
            response = client.post("/v1/models/text:classify", json={"texts": ["hello"]})
            statuses.append(response.status_code)
            if response.status_code == 429 and not retry_after:
                retry_after = response.headers.get("retry-after", "")
                message = error_message(response) or ""
        health = client.get("/healthz").status_code
        time.sleep(1.0)  # 5 tokens back at 5/s
        after = client.post("/v1/models/text:classify", json={"texts": ["hello"]}).status_code
    limited = statuses.count(429)
    outcome.check(
        limited > 0, f"rate limit: 0 of 60 back-to-back requests refused with 429 ({RATE_LIMIT_ENV})"
    )
    outcome.check(
        not limited or (retry_after != "" and message != ""), "rate limit: 429 without Retry-After or message"
    )
    outcome.check(after == 200, f"rate limit: a request after the bucket refilled got {after}")
    outcome.check(
        health == 200, f"rate limit: /healthz got {health} right after the burst (probes are never limited)"
    )
    outcome.check(
        all(s in (200, 429) for s in statuses), f"rate limit: unexpected statuses {sorted(set(statuses))}"
    )
    return {
        "rate_limit": dict(RATE_LIMIT_ENV),
        "burst_sent": len(statuses),
        "burst_served": statuses.count(200),
        "burst_refused_429": limited,
        "served_after_refill": after == 200,
    }


def run(stack: Stack, workdir: Path) -> Outcome:
    outcome = Outcome("security", "Security")
    figures: dict[str, Any] = {}
    figures.update(admin_auth(stack, outcome))
    figures.update(traversal(stack, outcome))
    figures.update(replies(stack, outcome))
    users = container_users()
    root_users = sorted(
        k for k, v in users.items() if _is_root(v) and not k.endswith(("base", "builder", "deps"))
    )
    outcome.check(not root_users, f"containers running as root: {root_users}")
    figures["containers"] = users
    figures["containers_as_root"] = root_users
    figures.update(size_limit(stack, outcome))
    figures.update(rate_limit(stack, outcome, workdir))
    outcome.figures = figures
    return outcome.finish()
