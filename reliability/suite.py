"""The suite: which scenarios run on which stack, at which scale. ``run_suite`` is what ``python -m
reliability`` and ``tests/reliability`` both call.

Stacks (each a private copy of the model repository, real processes on loopback):
  A  hostile, security, fuzz,      default settings plus ``attack.attack_options`` (a model-control token,
     attack                       short header/body timeouts); attack last: it empties and heals the server
  B  versions                      text + housing; modelserver as an unprivileged user when we are root
  C  faults                        modelserver as an unprivileged user when we are root
  D  hotswap, soak
  E  exhaustion                    default settings plus ``exhaustion.exhaustion_options`` (a short total
                                   body deadline); its own stack: it takes the model server to its open-file
                                   limit
"""

from __future__ import annotations

import os
import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reliability import attack, exhaustion, faults, fuzz, hostile, hotswap, security, soak, versions
from reliability.outcome import Outcome
from reliability.repo import copy_repo
from reliability.stack import Stack, StackOptions

__all__ = ["FULL", "QUICK", "SCENARIOS", "Scale", "privileges", "run_suite", "workdir"]

SCENARIOS: tuple[str, ...] = (
    "hostile",
    "security",
    "fuzz",
    "attack",
    "exhaustion",
    "versions",
    "faults",
    "hotswap",
    "soak",
)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
NOBODY = 65534


@dataclass(frozen=True)
class Scale:
    gateway_examples: int  # per operation of the gateway's OpenAPI schema
    modelserver_examples: int
    swaps: int
    soak_requests: int


FULL = Scale(gateway_examples=300, modelserver_examples=3000, swaps=100, soak_requests=20_000)
QUICK = Scale(gateway_examples=4, modelserver_examples=60, swaps=3, soak_requests=1_000)


def privileges() -> tuple[int | None, bool]:
    """(uid to run the modelserver as, whether the file-permission cases can run). As root, permissions do
    not apply, so the modelserver runs as ``nobody`` (setpriv); otherwise it runs as we do."""
    if os.geteuid() != 0:
        return None, True
    if shutil.which("setpriv"):
        return NOBODY, True
    return None, False


def workdir(prefix: str = "tfserve-reliability-") -> Path:
    """A fresh folder every user can read (the modelserver may run as ``nobody``)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def _guard(name: str, title: str, body: Callable[[], Outcome]) -> Outcome:
    try:
        return body()
    except Exception as exc:
        outcome = Outcome(name, title)
        outcome.failures.append(f"scenario crashed: {type(exc).__name__}: {exc}")
        outcome.notes.append(traceback.format_exc()[-2000:])
        return outcome.finish()


def run_suite(
    repo: Path,
    work: Path,
    scale: Scale,
    only: tuple[str, ...] = SCENARIOS,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    uid, permission_cases = privileges()
    outcomes: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        verdict = "pass" if outcome.passed else f"FAIL ({len(outcome.failures) + len(outcome.over_bound)})"
        log(f"== {outcome.title}: {verdict} in {outcome.seconds:.0f} s")
        for failure in [*outcome.failures, *outcome.over_bound][:10]:
            log(f"   - {failure[:300]}")

    def stack(group: str, names: tuple[str, ...] | None = None, **options: object) -> Stack:
        copy = copy_repo(repo, work / group / "repo", *((names,) if names else ()))
        return Stack(copy, work / group / "run", StackOptions(**options))  # type: ignore[arg-type]

    if {"hostile", "security", "fuzz", "attack"} & set(only):
        log("== stack A: hostile uploads, security, fuzzing, the independent attack")
        a = stack("a", gateway_env={"GATEWAY_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)})
        with Stack.start(a.repo, a.workdir, attack.attack_options(a.options)) as running:
            if "hostile" in only:
                done(
                    _guard(
                        "hostile",
                        "Hostile uploads",
                        lambda: hostile.run(running, max_upload_bytes=MAX_UPLOAD_BYTES),
                    )
                )
            if "security" in only:
                done(_guard("security", "Security", lambda: security.run(running, work / "a" / "security")))
            if "fuzz" in only:
                done(
                    _guard(
                        "fuzz",
                        "API fuzzing",
                        lambda: fuzz.run(
                            running,
                            gateway_examples=scale.gateway_examples,
                            modelserver_examples=scale.modelserver_examples,
                        ),
                    )
                )
            if "attack" in only:
                done(
                    _guard(
                        "attack",
                        "Independent attack (issue 17)",
                        lambda: attack.run(running, quick=scale is QUICK),
                    )
                )
    if "exhaustion" in only:
        log("== stack E: resource exhaustion of the model server")
        e = stack("e")
        with Stack.start(e.repo, e.workdir, exhaustion.exhaustion_options(e.options)) as running:
            done(
                _guard(
                    "exhaustion",
                    "Resource exhaustion (issue 25)",
                    lambda: exhaustion.run(running, quick=scale is QUICK),
                )
            )
    if "versions" in only:
        log("== stack B: bad model versions")
        b = stack("b", ("text", "housing"), modelserver_user=uid)
        with Stack.start(b.repo, b.workdir, b.options) as running:
            done(
                _guard(
                    "versions", "Bad model versions", lambda: versions.run(running, non_root=permission_cases)
                )
            )
    if "faults" in only:
        log("== stack C: faults")
        c = stack("c", modelserver_user=uid)
        with Stack.start(c.repo, c.workdir, c.options) as running:
            done(_guard("faults", "Faults", lambda: faults.run(running, non_root=permission_cases)))
    if {"hotswap", "soak"} & set(only):
        log("== stack D: hot-swap endurance, soak")
        d = stack("d")
        with Stack.start(d.repo, d.workdir, d.options) as running:
            if "hotswap" in only:
                done(_guard("hotswap", "Hot-swap endurance", lambda: hotswap.run(running, swaps=scale.swaps)))
            if "soak" in only:
                done(_guard("soak", "Soak", lambda: soak.run(running, total=scale.soak_requests)))
    order = {name: i for i, name in enumerate(SCENARIOS)}
    return sorted(outcomes, key=lambda o: order.get(o.name, 99))
