"""Bad model versions: each is published next to a serving version while requests flow. None may be served,
each must be reported in the model's status (TF Serving's GetModelStatus: END with an error), and the
previous version must keep answering every request. A half-copied directory (no saved_model.pb yet) is
not a version until its copy completes - then it is loaded like any other.

Cases: truncated ``saved_model.pb``; ``variables/`` missing; an unreadable version directory (the server
runs as an unprivileged user for this); a half-copied directory whose ``saved_model.pb`` arrived before its
variables; a model whose signature changed (its warm-up requests, written for the old signature, fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from devtools.tiny_models import corrupt_version
from reliability.load import Load, summarize
from reliability.outcome import Outcome
from reliability.payloads import HOUSING_RECORD, Request
from reliability.repo import latest_version, publish
from reliability.stack import Stack, wait_until

__all__ = ["MODEL", "run"]

MODEL = "housing"
REPO_ROOT = Path(__file__).resolve().parent.parent
WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"


def _truncated(good: Path, target: Path) -> None:
    corrupt_version(good, target, "truncated")


def _missing_variables(good: Path, target: Path) -> None:
    corrupt_version(good, target, "missing_variables")


def _unreadable(good: Path, target: Path) -> None:
    shutil.copytree(good, target)
    os.chmod(target, 0)


def _variables_half_copied(good: Path, target: Path) -> None:
    shutil.copytree(good, target)
    for data in (target / "variables").glob("variables.data-*"):
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def _signature_changed(good: Path, target: Path) -> None:
    """Another model (inputs ``a``, ``b``) under this name, with the warm-up requests of the old one."""
    # built in a child process: TensorFlow stays out of the suite's own process
    script = "import sys; from pathlib import Path; from devtools.tiny_models import multi_input; "
    script += "multi_input(Path(sys.argv[1]))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(
        [sys.executable, "-c", script, str(target)], cwd=REPO_ROOT, env=env, check=True, capture_output=True
    )
    (target / WARMUP).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(good / WARMUP, target / WARMUP)


CASES: tuple[tuple[str, Callable[[Path, Path], None]], ...] = (
    ("truncated saved_model.pb", _truncated),
    ("variables/ missing", _missing_variables),
    ("half-copied: saved_model.pb before its variables", _variables_half_copied),
    ("signature changed (warm-up requests no longer match)", _signature_changed),
    ("unreadable version directory", _unreadable),
)


def _status(stack: Stack) -> dict[int, tuple[str, str]]:
    reply = httpx.get(f"{stack.rest_url}/v1/models/{MODEL}", timeout=10).json()
    return {
        int(v["version"]): (v["state"], (v.get("status") or {}).get("error_message", ""))
        for v in reply.get("model_version_status", [])
    }


def _next_version(stack: Stack, base: Path) -> int:
    """Above every version on disk and in status (status remembers removed versions, as TF Serving's does)."""
    return max(latest_version(base), max(_status(stack), default=0)) + 1


def _answering_version(stack: Stack) -> int | None:
    response = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}:regress", json={"records": [HOUSING_RECORD]}, timeout=10
    )
    return int(response.json()["version"]) if response.status_code == 200 else None


def run(stack: Stack, *, non_root: bool) -> Outcome:
    outcome = Outcome("versions", "Bad model versions")
    base = stack.repo / MODEL
    good = base / str(latest_version(base))
    serving = int(good.name)
    staging = stack.workdir / "bad-versions"
    staging.mkdir(parents=True, exist_ok=True)
    requests = [Request("housing:regress", f"/v1/models/{MODEL}:regress", json={"records": [HOUSING_RECORD]})]
    if "text" in stack.models:
        requests.append(
            Request("text:classify", "/v1/models/text:classify", json={"texts": ["are you coming?"]})
        )
    never_served = reported = kept = 0
    tried = 0
    with Load(stack.gateway_url, requests, workers=2) as load:
        for name, make in CASES:
            if name.startswith("unreadable") and not non_root:
                outcome.notes.append(f"{name}: skipped (the suite runs as root and cannot drop privileges)")
                continue
            tried += 1
            version = _next_version(stack, base)
            source = staging / f"v{version}"
            make(good, source)
            publish(source, base, version)
            # settled: END (refused) or, were it a bug, AVAILABLE; LOADING is never the answer
            seen = wait_until(
                lambda v=version: _status(stack).get(v, ("ABSENT", ""))[0] in ("END", "AVAILABLE"), timeout=60
            )
            status = _status(stack)
            state, error = status.get(version, ("ABSENT", ""))
            available = sorted(v for v, (s, _) in status.items() if s == "AVAILABLE")
            answering = _answering_version(stack)
            ok_never = state != "AVAILABLE" and version not in available
            ok_reported = seen and state == "END" and bool(error)
            ok_kept = available == [serving] and answering == serving
            never_served += ok_never
            reported += ok_reported
            kept += ok_kept
            outcome.cases.append(
                {
                    "case": name,
                    "version": version,
                    "state": state,
                    "error": error[:240],
                    "available": available,
                    "answered_by": answering,
                }
            )
            outcome.check(ok_never, f"{name}: version {version} is {state}, it must never be served")
            outcome.check(ok_reported, f"{name}: version {version} not reported in status (state {state})")
            outcome.check(ok_kept, f"{name}: serving {available}, answered by {answering}; want {serving}")
            if name.startswith("unreadable"):  # made readable it would be a good version: remove it
                os.chmod(base / str(version), 0o755)
                shutil.rmtree(base / str(version))
        # a half-copied directory without saved_model.pb is ignored, and loaded once the copy completes
        version = _next_version(stack, base)
        target = base / str(version)
        target.mkdir()
        for part in ("variables", "assets", "assets.extra"):
            if (good / part).exists():
                shutil.copytree(good / part, target / part)
        time.sleep(2.5)
        ignored = version not in _status(stack) and _answering_version(stack) == serving
        outcome.check(ignored, f"half-copied version {version} (no saved_model.pb yet) was not ignored")
        shutil.copy2(good / "saved_model.pb", target / "saved_model.pb")
        completed = wait_until(lambda: _answering_version(stack) == version, timeout=30)
        outcome.check(completed, f"version {version}, completed after a half copy, was never served")
        outcome.cases.append(
            {
                "case": "half-copied: no saved_model.pb yet, then completed",
                "version": version,
                "ignored_while_incomplete": ignored,
                "served_once_complete": completed,
            }
        )
        time.sleep(1.0)
        samples = load.stop()
    for path in base.iterdir():  # let the test clean up (root or not)
        if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
            os.chmod(path, 0o755)
    summary = summarize(samples)
    failed = [s for s in samples if s.status != 200]
    if failed:
        outcome.failures.append(
            f"{len(failed)} of {len(samples)} requests failed during the bad versions; "
            f"first: {failed[0].status} {failed[0].detail[:200]}"
        )
    outcome.figures = {
        "bad_versions": tried,
        "never_served": never_served,
        "reported_in_status": reported,
        "previous_kept_serving": kept,
        "half_copy_ignored_then_loaded": bool(ignored and completed),
        "requests_during": summary,
        "failed_requests": len(failed),
    }
    return outcome.finish()
