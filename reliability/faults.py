"""Faults: the modelserver SIGKILLed under load (the gateway answers 503 at once, never hangs, and serves
again within ``RECOVERY_BOUND_SECONDS`` of the restart); a slow model server (the gateway's deadline fires:
504, in about the deadline); the models directory briefly unavailable (nothing unloaded, no failed request).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from reliability.load import Load, Sample, summarize
from reliability.outcome import Outcome
from reliability.payloads import Request, mixed_requests, valid_requests
from reliability.proxy import Proxy
from reliability.replies import error_message, leaks
from reliability.stack import Stack, extra_gateway, wait_until

__all__ = [
    "RECOVERY_BOUND_SECONDS",
    "kill_under_load",
    "models_dir_unavailable",
    "run",
    "slow_model_server",
]

RECOVERY_BOUND_SECONDS = 2.0
DOWN_ANSWER_BOUND_SECONDS = 3.0  # retries included: a request while the server is down must end by then
DEADLINE_SECONDS = 1.0


def _available(stack: Stack) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for name in stack.models:
        reply = httpx.get(f"{stack.rest_url}/v1/models/{name}", timeout=10).json()
        found[name] = sorted(
            int(v["version"]) for v in reply.get("model_version_status", []) if v["state"] == "AVAILABLE"
        )
    return found


def kill_under_load(
    stack: Stack, outcome: Outcome, requests: list[Request], down_seconds: float = 3.0
) -> dict[str, Any]:
    with Load(stack.gateway_url, requests, workers=4, timeout=30) as load:
        time.sleep(2.0)
        killed = time.monotonic()
        stack.kill_modelserver()
        time.sleep(0.3)
        with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
            down = client.post(requests[0].path, **requests[0].send_kwargs())
            ready_down = client.get("/readyz").status_code
        time.sleep(max(0.0, down_seconds - 0.3))
        restarting = time.monotonic()
        stack.start_modelserver()  # returns once its ports are open (models loaded)
        ready = time.monotonic()
        wait_until(lambda: _served_since(load.samples, ready), timeout=60, interval=0.02)
        time.sleep(1.0)
        samples = load.stop()
    first_ok = min(
        (s.started + s.seconds for s in samples if s.status == 200 and s.started >= ready), default=None
    )
    # a request that *started* after the server was back must not fail
    after = [s for s in samples if s.started >= (first_ok or ready)]
    during = [s for s in samples if killed + 0.05 <= s.started and s.started + s.seconds < restarting]
    recovery = (first_ok - ready) if first_ok is not None else None
    unexpected = sorted({s.status for s in samples} - {200, 503})
    slowest_down = max((s.seconds for s in during), default=0.0)
    message = error_message(down) or ""
    outcome.check(
        down.status_code == 503, f"modelserver down: the gateway answered {down.status_code}, want 503"
    )
    outcome.check("retry-after" in down.headers, "modelserver down: 503 without Retry-After")
    outcome.check(bool(message), "modelserver down: 503 without an error message")
    found = leaks(down.text, [str(stack.repo)])
    outcome.check(not found, f"modelserver down: the 503 leaks {found}: {down.text[:200]!r}")
    outcome.check(ready_down == 503, f"modelserver down: /readyz answered {ready_down}, want 503")
    outcome.check_bound(slowest_down, DOWN_ANSWER_BOUND_SECONDS, "modelserver down: the slowest answer")
    outcome.check(not unexpected, f"kill: statuses other than 200/503: {unexpected}")
    outcome.check(recovery is not None, "kill: no request succeeded after the restart")
    outcome.check_bound(recovery, RECOVERY_BOUND_SECONDS, "kill: first 200 after the restart")
    failed_after = [s for s in after if s.status != 200]
    outcome.check(not failed_after, f"kill: {len(failed_after)} requests failed after recovery")
    return {
        "requests": summarize(samples),
        "answers_while_down": summarize(during),
        "down_reply": {
            "status": down.status_code,
            "retry_after": down.headers.get("retry-after"),
            "message": message,
        },
        "readyz_while_down": ready_down,
        "slowest_answer_while_down_s": round(slowest_down, 3),
        "recovery_after_restart_s": round(recovery, 3) if recovery is not None else None,
        "restart_to_ports_open_s": round(ready - restarting, 1),
    }


def _served_since(samples: list[Sample], since: float) -> bool:
    return any(s.status == 200 and s.started >= since for s in list(samples))


def slow_model_server(
    stack: Stack, outcome: Outcome, requests: list[Request] | None = None
) -> dict[str, Any]:
    """A second gateway whose model server answers through a proxy that adds 3x the deadline."""
    results: dict[str, Any] = {}
    with Proxy(stack.grpc_port) as proxy:
        env = {
            "GATEWAY_DEFAULT_MODEL_SERVER": proxy.address,
            "GATEWAY_TIMEOUT_SECONDS": str(DEADLINE_SECONDS),
            "GATEWAY_METADATA_TIMEOUT_SECONDS": str(DEADLINE_SECONDS),
        }
        with extra_gateway(proxy.address, stack.config, stack.workdir / "slow", env) as gateway:
            url = gateway.url
            requests = requests or valid_requests()
            with httpx.Client(base_url=url, timeout=30) as client:
                fast = [client.post(r.path, **r.send_kwargs()).status_code for r in requests]
                proxy.delay = 3 * DEADLINE_SECONDS
                slow: list[tuple[int, float, str]] = []
                for request in requests:
                    started = time.monotonic()
                    response = client.post(request.path, **request.send_kwargs())
                    slow.append(
                        (response.status_code, time.monotonic() - started, error_message(response) or "")
                    )
                ready = client.get("/readyz").status_code
                proxy.delay = 0.0
                back = wait_until(
                    lambda: client.post(requests[0].path, **requests[0].send_kwargs()).status_code == 200, 60
                )
    statuses = [s for s, _, _ in slow]
    slowest = max(t for _, t, _ in slow)
    outcome.check(all(s == 200 for s in fast), f"slow server: before the delay the gateway answered {fast}")
    outcome.check(all(s == 504 for s in statuses), f"slow server: statuses {statuses}, want 504 for all")
    outcome.check(all(m for _, _, m in slow), "slow server: a 504 without an error message")
    found = sorted({kind for _, _, m in slow for kind in leaks(m, [str(stack.repo)])})
    outcome.check(not found, f"slow server: the 504 message leaks {found}: {slow[0][2][:200]!r}")
    outcome.check_bound(
        slowest, 3 * DEADLINE_SECONDS, f"slow server: the slowest answer (deadline {DEADLINE_SECONDS} s)"
    )
    outcome.check(ready == 503, f"slow server: /readyz answered {ready}, want 503")
    outcome.check(back, "slow server: the gateway did not serve again once the server was fast")
    results.update(
        {
            "deadline_s": DEADLINE_SECONDS,
            "added_delay_s": 3 * DEADLINE_SECONDS,
            "statuses": statuses,
            "slowest_answer_s": round(slowest, 3),
            "message": slow[0][2],
            "recovered": back,
        }
    )
    return results


def models_dir_unavailable(
    stack: Stack, outcome: Outcome, non_root: bool, only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Each variant hides part of the repository for three polls; ``only``: variant names to run."""
    repo = stack.repo
    before = _available(stack)
    variants: list[tuple[str, Any, Any]] = []

    def move(src: Path, dst: Path) -> tuple[Any, Any]:
        return (lambda: os.rename(src, dst)), (lambda: os.rename(dst, src))

    model = "text" if "text" in stack.models else stack.models[0]
    text, away = repo / model, repo / f".{model}-away"
    variants.append(("a model's base path missing", *move(text, away)))
    parked = repo.parent / f".{repo.name}-away"
    variants.append(("the whole models directory missing", *move(repo, parked)))

    def empty_mount() -> None:  # an unmounted volume leaves an empty mount point behind
        os.rename(repo, parked)
        repo.mkdir()

    def remount() -> None:
        repo.rmdir()
        os.rename(parked, repo)

    variants.append(("the models directory empty (volume unmounted)", empty_mount, remount))
    if non_root:
        variants.append(
            ("a model's base path unreadable", lambda: os.chmod(text, 0), lambda: os.chmod(text, 0o755))
        )
    if only:
        variants = [v for v in variants if v[0] in only]
    results: list[dict[str, Any]] = []
    requests = mixed_requests(64, seed=5, models=stack.models)
    with Load(stack.gateway_url, requests, workers=2) as load:
        for name, hide, restore in variants:
            hide()
            try:
                time.sleep(3.5)  # three polls
                during = _available(stack)
            finally:
                restore()
            time.sleep(2.5)
            after = _available(stack)
            ok = during == before and after == before
            results.append({"case": name, "available_during": during, "available_after": after, "ok": ok})
            outcome.check(ok, f"{name}: served {during} during and {after} after; before {before}")
        samples = load.stop()
    failed = [s for s in samples if s.status != 200]
    if failed:
        outcome.failures.append(
            f"models directory unavailable: {len(failed)} of {len(samples)} requests failed; "
            f"first {failed[0].status} {failed[0].detail[:200]}"
        )
    if parked.exists() and not repo.exists():
        shutil.move(parked, repo)
    return {"variants": results, "requests": summarize(samples), "failed_requests": len(failed)}


def run(stack: Stack, *, non_root: bool, down_seconds: float = 3.0) -> Outcome:
    outcome = Outcome("faults", "Faults")
    outcome.figures["models_dir_unavailable"] = models_dir_unavailable(stack, outcome, non_root)
    outcome.figures["slow_model_server"] = slow_model_server(stack, outcome)
    outcome.figures["sigkill_under_load"] = kill_under_load(
        stack, outcome, mixed_requests(64, seed=3), down_seconds
    )
    return outcome.finish()
