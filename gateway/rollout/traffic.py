"""Traffic between a model's stable version and its canary: weighted split, shadow comparison, and automatic
rollback over a sliding window.

Contract
--------
- Only requests that name neither a version nor a label are split; the model's desired state (re-read from its
  models.config at most every ``REFRESH_SECONDS``, so every gateway follows the same canary) says the stable
  version, the candidate, its ``weight`` and ``shadow`` percentages. Both versions are pinned and loaded on
  every replica, and each request names its version explicitly, so the reply's version is the one that
  answered.
- **Split.** A request with the key header (``GATEWAY_CANARY_KEY_HEADER``) goes to the canary when
  ``sha256(model:key)`` falls in the first ``weight`` % of the hash space: the same key always lands on the
  same side on every gateway, and raising the weight only moves keys from stable to canary (consistent
  hashing). Without the header the side is drawn at random with probability ``weight`` %.
- **Never a failed reply because of the candidate.** A candidate that errs or answers a non-finite number
  (NaN, inf) is asked no more for that request: the stable version answers it, and the failure counts against
  the candidate (only when the stable version then answers; a request that both reject is the client's).
  A candidate out of time or capacity (DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) is not wrong but slow for that
  request: it counts as a cost for the latency rule, not as an error (a client's expensive requests time out
  where they are sent).
- **Shadow.** ``shadow`` % of stable requests are also sent to the candidate in the background (at most
  ``GATEWAY_SHADOW_MAX_INFLIGHT`` at once, more are skipped); its answer is never returned, only compared:
  top labels (classification) or the mean absolute difference of the numbers (regression, raw outputs) go to
  ``gateway_shadow_requests_total{outcome=agree|disagree|failed}`` and ``gateway_shadow_difference``.
- **Automatic rollback.** Each side keeps its last ``GATEWAY_CANARY_WINDOW`` outcomes (ok, latency). Once the
  candidate has ``GATEWAY_CANARY_MIN_REQUESTS`` of them, it is rolled back when
  ``error_rate(canary) - error_rate(stable) > GATEWAY_CANARY_MAX_ERROR_RATE_DELTA`` with failures from at least
  ``GATEWAY_CANARY_MIN_CLIENTS`` clients (all of the canary's, when it has fewer) or, with at least
  ``P99_MIN_SAMPLES`` (100) on each side, by the latency rule below (``latency``; it replaced a p99 of all
  requests, which one client sending expensive requests to the canary side decided).
- **The latency rule compares like with like, and no few clients decide it.** The canary side is a public
  function of the key header, so a client can choose it and send expensive requests. The rule therefore
  measures each request's cost per row (seconds / rows answered: a batch of 32 is not 32 requests), per client
  (the TCP peer, or the address a ``GATEWAY_TRUSTED_PROXIES`` proxy names - never the key, which a client
  picks freely): each client's last ``CLIENT_SAMPLES`` costs are kept (one client holds at most that much of
  the evidence) for at most ``MAX_CLIENTS`` clients per side, and a client's cost is its median (a request
  the gateway coalesced, or the server batched, with someone's expensive one is an outlier of that client).
  The stable reference is the median over stable clients; a canary client *regressed* when its cost is over
  ``reference * GATEWAY_CANARY_MAX_P99_RATIO + GATEWAY_CANARY_P99_SLACK_SECONDS``. The candidate fails the
  rule only when at least ``GATEWAY_CANARY_MIN_CLIENTS`` clients regressed (all, when it has fewer) and they
  are more than half of the canary's clients (with ``MIN_CLIENT_SAMPLES`` each): a genuinely slow version is
  slow for everyone.
  This gateway stops sending it traffic at once; ``Operations.auto_rollback`` then sets its weight to 0 in the
  shared state with the reason and the figures (an event, shown in the console, counted in
  ``gateway_canary_rollbacks_total``). Promotion stays a separate admin call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from pydantic import BaseModel

from gateway.errors import GatewayError, UpstreamError
from gateway.metrics import Metrics
from gateway.rollout.catalog import Catalog
from gateway.rollout.desired import Canary
from gateway.rollout.operations import Operations
from gateway.rollout.window import CLIENT_SAMPLES, MAX_CLIENTS, P99_MIN_SAMPLES, Window
from gateway.settings import Settings

__all__ = [
    "CLIENT_SAMPLES",
    "MAX_CLIENTS",
    "P99_MIN_SAMPLES",
    "Choice",
    "Traffic",
    "Window",
    "in_canary",
    "is_finite",
]

log = logging.getLogger("gateway.traffic")
REFRESH_SECONDS = 0.5
SLOW_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED})
SHADOW_AGREE_TOLERANCE = 1e-4
R = TypeVar("R", bound=BaseModel)


def in_canary(model: str, key: str, weight: float) -> bool:
    """Consistent hashing: the key's place in [0, 100) is fixed; the canary holds the first ``weight`` %."""
    point = int.from_bytes(hashlib.sha256(f"{model}:{key}".encode()).digest()[:8], "big") / 2**64 * 100
    return point < weight


def is_finite(value: Any) -> bool:
    """No NaN, inf or null (a non-finite number the reply turned into null) anywhere in ``value``."""
    if isinstance(value, dict):
        return all(is_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(is_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is not None


def _rows(reply: BaseModel) -> int:
    """The rows a reply answered: the unit of work its latency is divided by."""
    return len(getattr(reply, "predictions", None) or ()) or 1


def _labels(reply: BaseModel) -> list[str] | None:
    rows = getattr(reply, "predictions", [])
    labels = [getattr(r, "label", None) for r in rows]
    return [str(x) for x in labels] if labels and all(x is not None for x in labels) else None


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []


@dataclass
class Choice:
    """Which side answers one request (``Traffic.choose``) and what ``Traffic.record`` learnt of it."""

    name: str
    version: int | None
    label: str | None
    client: str = ""
    side: str = ""  # "canary" or "stable" when the model has a canary; "" when there is no split
    canary: Canary | None = None
    window: Window | None = None
    shadow: int | None = None  # the canary version to compare in the background, set after a stable answer
    slow: bool = False  # the refused canary answer was out of time or capacity
    seconds: float = 0.0  # how long the refused canary answer took

    @property
    def stable(self) -> int | None:
        """The version that answers when the canary's answer is refused."""
        return self.canary.stable if self.canary is not None else self.version


class Traffic:
    def __init__(
        self, settings: Settings, catalog: Catalog, operations: Operations, metrics: Metrics
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._operations = operations
        self._metrics = metrics
        self._random = random.Random()
        self._windows: dict[tuple[str, int], Window] = {}
        self._tripped: set[tuple[str, int]] = set()
        self._canaries: dict[str, tuple[float, Canary | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shadows = 0

    def forget(self, name: str) -> None:
        """Re-read the model's canary on the next request (after this gateway changed it: its own admin
        change takes effect at once; another gateway's within REFRESH_SECONDS)."""
        self._canaries.pop(name, None)

    def canary(self, name: str) -> Canary | None:
        """The model's canary from its models.config (re-read at most every REFRESH_SECONDS)."""
        now = time.monotonic()
        cached = self._canaries.get(name)
        if cached is not None and now - cached[0] < REFRESH_SECONDS:
            return cached[1]
        if not self._catalog.enabled or name not in self._catalog.models():
            return None  # nothing kept for a name the client chose (admin off: any name is asked upstream)
        desired = self._catalog.store_for(name).current()
        state = desired.models.get(name) if desired else None
        canary = state.canary if state else None
        running = canary.version if canary is not None and canary.status == "running" else None
        # only the running canary's window is kept: a decided or replaced one starts afresh
        for key in [k for k in self._windows if k[0] == name and k[1] != running]:
            self._windows.pop(key, None)
            self._tripped.discard(key)
        self._canaries[name] = (now, canary)
        return canary

    def _side(self, name: str, canary: Canary, headers: Mapping[str, str]) -> str:
        if canary.status != "running" or canary.weight <= 0 or (name, canary.version) in self._tripped:
            return "stable"
        key = headers.get(self._settings.canary_key_header)
        hit = in_canary(name, key, canary.weight) if key else self._random.random() * 100 < canary.weight
        return "canary" if hit else "stable"

    def choose(
        self,
        name: str,
        headers: Mapping[str, str],
        version: int | None,
        label: str | None,
        client: str = "",
    ) -> Choice:
        """Which side answers one request: split when the model has a canary and the request named no version.
        ``client`` is who sent it as the latency rule counts clients (the peer address, never the key)."""
        canary = self.canary(name) if version is None and label is None else None
        if canary is None:
            return Choice(name, version, label, client)
        window = self._windows.setdefault((name, canary.version), Window(self._settings.canary_window))
        side = self._side(name, canary, headers)
        chosen = canary.version if side == "canary" else canary.stable
        return Choice(name, chosen, None, client, side=side, canary=canary, window=window)

    async def answer(self, choice: Choice, call: Callable[[int | None, str | None], Awaitable[R]]) -> R:
        """``call(version, label)`` for ``choice``, through ``record``; when the canary's answer is refused the
        stable version's (``fallback``); after a stable answer, the shadow version's compared (``compare``)."""
        reply = await self.record(choice, call(choice.version, choice.label))
        if reply is None:  # the canary's answer was refused: the stable version answers
            reply = await self.fallback(choice, call(choice.stable, None))
        if choice.shadow is not None:
            self.compare(choice, reply, call(choice.shadow, None))
        return reply

    async def record(self, choice: Choice, answer: Awaitable[R]) -> R | None:
        """``answer`` (the plain call for ``choice``), timed and counted in the canary's window. None when the
        canary's answer is refused (it failed, or its predictions are not finite): then the stable version
        answers through ``fallback``. After a stable answer ``choice.shadow`` names the version to compare."""
        if choice.canary is None or choice.window is None:
            return await answer
        started = time.perf_counter()
        if choice.side == "canary":
            try:
                reply: R | None = await answer
                ok = reply is not None and is_finite(reply.model_dump().get("predictions"))
            except GatewayError as exc:
                log.info(
                    "canary %s v%d failed (%s); the stable version answers", choice.name, choice.version, exc
                )
                reply, ok = None, False
                # out of time or capacity: the request's cost (the latency rule's), not a wrong answer
                choice.slow = isinstance(exc, UpstreamError) and exc.code in SLOW_CODES
            choice.seconds = time.perf_counter() - started
            if ok and reply is not None:
                choice.window.add("canary", True, choice.seconds, rows=_rows(reply), client=choice.client)
                self._metrics.canary_requests.labels(choice.name, "canary", "ok").inc()
                self._judge(choice.name, choice.canary, choice.window)
                return reply
            return None
        try:
            reply = await answer
        except UpstreamError:
            choice.window.add("stable", False, time.perf_counter() - started)
            self._metrics.canary_requests.labels(choice.name, "stable", "failed").inc()
            raise
        seconds = time.perf_counter() - started
        choice.window.add("stable", True, seconds, rows=_rows(reply), client=choice.client)
        self._metrics.canary_requests.labels(choice.name, "stable", "ok").inc()
        canary = choice.canary
        drawn = (
            canary.status == "running" and canary.shadow > 0 and self._random.random() * 100 < canary.shadow
        )
        if drawn and self._shadows < self._settings.shadow_max_inflight:
            self._shadows += 1  # the slot ``compare`` releases
            choice.shadow = canary.version
        return reply

    async def fallback(self, choice: Choice, answer: Awaitable[R]) -> R:
        """The stable version's answer (``answer``, the plain call for ``choice.stable``) after ``record``
        refused the canary's; counted as the canary's request. Raises when stable refuses too."""
        assert choice.canary is not None and choice.window is not None
        reply = await answer  # raises when stable refuses too: the client's error
        choice.window.add("canary", choice.slow, choice.seconds, rows=_rows(reply), client=choice.client)
        self._metrics.canary_requests.labels(choice.name, "canary", "fallback").inc()
        self._judge(choice.name, choice.canary, choice.window)
        return reply

    def _judge(self, name: str, canary: Canary, window: Window) -> None:
        reason = window.verdict(self._settings)
        current = self._windows.get((name, canary.version)) is window  # not one a decision already dropped
        if reason is None or not current or (name, canary.version) in self._tripped:
            return
        self._tripped.add((name, canary.version))
        figures = window.figures(self._settings)
        self._metrics.canary_rollbacks.labels(name, reason).inc()
        self._metrics.canary_weight.labels(name).set(0)
        log.warning(
            "model %s: canary version %d fails the %s rule: %s", name, canary.version, reason, figures
        )
        self._spawn(self._operations.auto_rollback(name, canary.version, reason, figures))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("background canary work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def compare(self, choice: Choice, stable: BaseModel, candidate: Awaitable[BaseModel]) -> None:
        """Compare in the background the stable answer with ``candidate`` (the plain call for
        ``choice.shadow``, which ``record`` set after reserving an in-flight slot)."""
        name = choice.name

        async def compare() -> None:
            try:
                theirs_reply = await candidate
            except Exception:
                self._metrics.shadow_requests.labels(name, "failed").inc()
                return
            finally:
                self._shadows -= 1
            mine, theirs = (
                stable.model_dump().get("predictions"),
                theirs_reply.model_dump().get("predictions"),
            )
            if not is_finite(theirs):
                self._metrics.shadow_requests.labels(name, "failed").inc()
                return
            a, b = _numbers(mine), _numbers(theirs)
            diff = (
                sum(abs(x - y) for x, y in zip(a, b, strict=False)) / len(a)
                if a and len(a) == len(b)
                else math.inf
            )
            labels = _labels(stable)
            agree = labels == _labels(theirs_reply) if labels is not None else diff <= SHADOW_AGREE_TOLERANCE
            if math.isfinite(diff):
                self._metrics.shadow_difference.labels(name).observe(diff)
            self._metrics.shadow_requests.labels(name, "agree" if agree else "disagree").inc()

        self._spawn(compare())

    def window(self, name: str, version: int) -> dict[str, float] | None:
        found = self._windows.get((name, version))
        return found.figures(self._settings) if found else None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
