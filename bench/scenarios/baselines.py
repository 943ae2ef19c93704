"""Scenario 2: the naive FastAPI + ``model.predict`` server and the peers - BentoML (adaptive batching), Ray
Serve (``@serve.batch``) and KServe (its Python model server) - all driven by wrk with the same
``{"instances": [image]}`` body the modelserver's REST predict gets. Each peer's answer to that body is kept
for the cross-check against ours (bench.answers); its memory (PSS and RSS), start-up time and listening
addresses are recorded after its heaviest load point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.answers import fetch_answer
from bench.errors import BenchError
from bench.goals import PEERS as PEER_LABELS
from bench.peer_envs import peer_venv, peer_version
from bench.procs import ServerProcess
from bench.scenarios.modelserver import rest_point
from bench.servers import RAY_EXPOSED, is_loopback, start_bentoml, start_kserve, start_naive, start_ray

__all__ = ["PEERS", "Peer", "record_answer", "run_naive", "run_peer"]

PREDICT_PATH = "/v1/models/fashion:predict"


@dataclass(frozen=True)
class Peer:
    start: Callable[[Any], ServerProcess]
    exposed: str = ""  # why it may listen beyond loopback (recorded with its listeners); "" = it may not


PEERS: dict[str, Peer] = {
    "bentoml": Peer(start_bentoml),
    "ray": Peer(start_ray, RAY_EXPOSED),
    "kserve": Peer(start_kserve),
}


def record_answer(ctx: Any, name: str, url: str) -> None:
    """Keep ``name``'s answer to the REST body for the cross-check; a failure is recorded, not raised."""
    try:
        ctx.results.setdefault("answers", {})[name] = fetch_answer(url, ctx.payloads.rest_fashion)
    except ValueError as exc:
        ctx.results.setdefault("verified", {})[f"{name} answer"] = str(exc)
        ctx.say(f"{name}: no usable answer to the REST body ({exc})")


def _drive(ctx: Any, server: ServerProcess, name: str) -> None:
    url = f"http://127.0.0.1:{server.ports['http']}{PREDICT_PATH}"
    s = ctx.settings
    if name != "naive":
        record_answer(ctx, name, url)
    for concurrency in (min(s.concurrencies), max(s.concurrencies)):
        rest_point(ctx, server, f"{name}.c{concurrency}", url, concurrency)
    ctx.measure_server(name, server)


def run_naive(ctx: Any) -> None:
    try:
        with start_naive(ctx) as server:
            _drive(ctx, server, "naive")
    except BenchError as exc:
        ctx.skip("naive", str(exc).splitlines()[0])


def run_peer(ctx: Any, name: str) -> None:
    """Measure one peer of ``PEERS``; skipped (with the reason printed) when it is not installed or cannot
    start on this machine."""
    peer, label = PEERS[name], PEER_LABELS[name]
    version = peer_version(ctx.repo_root, name)
    if version is None:
        venv = peer_venv(ctx.repo_root, name)
        ctx.skip(name, f"{label} is not installed in {venv}: `make bench-tools` creates its own venv")
        return
    ctx.results.setdefault("versions", {})[name] = version
    try:
        with peer.start(ctx) as server:
            _drive(ctx, server, name)
            exposed = [a for a in ctx.results["listening"][name] if not is_loopback(a)]
            if exposed:
                ctx.results.setdefault("exposed", {})[name] = {"listeners": exposed, "why": peer.exposed}
                ctx.say(
                    f"{label}: {len(exposed)} listeners beyond 127.0.0.1 (no load sent there): {peer.exposed}"
                )
    except BenchError as exc:
        ctx.skip(name, f"{label} could not be measured: {str(exc).splitlines()[0]}")
