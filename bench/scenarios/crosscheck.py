"""The answers cross-check, run last: every peer's answer to the REST body (kept by its scenario) against
our modelserver's. When no modelserver scenario ran, a batching-off modelserver with the fashion model is
started just to answer the same body once."""

from __future__ import annotations

from typing import Any

from bench.answers import compare
from bench.scenarios.baselines import PREDICT_PATH, record_answer
from bench.servers import start_modelserver

__all__ = ["run"]

OURS = "modelserver"


def run(ctx: Any) -> None:
    answers: dict[str, list[float]] = ctx.results.get("answers", {})
    peers = [name for name in answers if name != OURS]
    if not peers:
        return
    if OURS not in answers:
        config = ctx.work / "fashion.config"
        with start_modelserver(
            ctx, "modelserver-reference", config, batching=False, wait_for=("fashion",)
        ) as ms:
            record_answer(ctx, OURS, f"http://127.0.0.1:{ms.ports['rest']}{PREDICT_PATH}")
    verified = ctx.results.setdefault("verified", {})
    for name in peers:
        verdict = compare(answers[OURS], answers[name]) if OURS in answers else "ours did not answer"
        verified[f"{name} answer"] = verdict
        ctx.say(f"{name} answer vs ours: {verdict}")
