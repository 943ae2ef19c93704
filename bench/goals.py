"""The goals of issues 8, 14 and 30, each a ratio (or a count) computed from one run's results, judged met /
missed by how much / not measured. Works on the results dict alone, so a stored JSON can be re-judged."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.scenarios.inprocess import best as inprocess_best

__all__ = ["PEERS", "Goal", "best_peer", "evaluate", "mobilenet_concurrencies"]

# The other servers people choose between, by their results key (points "<key>.c<N>").
PEERS: dict[str, str] = {"bentoml": "BentoML", "ray": "Ray Serve", "kserve": "KServe"}


@dataclass
class Goal:
    key: str
    text: str
    target: float
    op: str  # ">=" or "<="
    unit: str  # "x" (a ratio), "%" (a relative error), "ms", "requests"
    value: float | None = None
    detail: str = ""
    missing: str = ""

    @property
    def status(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "not measured"
        ok = self.value >= self.target if self.op == ">=" else self.value <= self.target
        return "met" if ok else "missed"

    def verdict(self) -> str:
        if self.status == "not measured":
            return f"not measured: {self.missing or 'scenario skipped'}"
        if self.status == "met":
            return "met"
        assert self.value is not None
        if self.unit == "x" and self.op == ">=":
            return f"missed: {self.value / self.target:.0%} of the target"
        if self.unit == "x":
            return f"missed: {self.value / self.target:.1f}x the limit"
        gap = self.target - self.value if self.op == ">=" else self.value - self.target
        return f"missed by {_fmt(gap, self.unit)}"

    def measured(self) -> str:
        return "-" if self.value is None or math.isnan(self.value) else _fmt(self.value, self.unit)

    def goal(self) -> str:
        return f"{self.op} {_fmt(self.target, self.unit)}"


def _fmt(value: float, unit: str) -> str:
    if math.isinf(value):
        return "unbounded (the baseline answered nothing in time)"
    if unit == "x":
        return f"{value:.3g}x" if abs(value) < 10 else f"{value:.0f}x"
    if unit == "%":
        return f"{value * 100:.0f} %"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.0f} {unit}".strip()


def best_peer(
    points: dict[str, dict[str, Any]], concurrency: int, field: str, prefix: str = ""
) -> tuple[str, float] | None:
    """The peer with the most req/s (``field="rps"``) or the lowest latency (a ``*_ms`` field) at
    ``concurrency``, among those measured: (key, value), or None when none was. ``prefix``: the points of
    another model (``"mobilenet."``: ``mobilenet.<peer>.c<N>``)."""
    found = [
        (key, float(points[f"{prefix}{key}.c{concurrency}"][field]))
        for key in PEERS
        if points.get(f"{prefix}{key}.c{concurrency}", {}).get(field) is not None
        and not math.isnan(float(points[f"{prefix}{key}.c{concurrency}"][field]))
        and points[f"{prefix}{key}.c{concurrency}"].get("ok", 1) > 0
    ]
    if not found:
        return None
    return max(found, key=lambda kv: kv[1]) if field == "rps" else min(found, key=lambda kv: kv[1])


def _peer_figures(
    points: dict[str, dict[str, Any]], concurrency: int, field: str, fmt: str, prefix: str = ""
) -> str:
    return ", ".join(
        f"{label} {format(points[f'{prefix}{key}.c{concurrency}'][field], fmt)}"
        for key, label in PEERS.items()
        if f"{prefix}{key}.c{concurrency}" in points
    )


def evaluate(results: dict[str, Any]) -> list[Goal]:
    points: dict[str, dict[str, Any]] = results.get("points", {})
    conc = results.get("settings", {}).get("concurrencies") or [1, 8, 64]
    top, low = max(conc), min(conc)

    def pt(key: str, field: str = "rps") -> float | None:
        value = points.get(key, {}).get(field)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    def ratio(a: float | None, b: float | None) -> float | None:
        if a is None or b is None:
            return None
        if b == 0:  # the baseline served nothing in time (the naive server at c64 may not)
            return math.inf if a > 0 else None
        return a / b

    def need(*keys: str) -> str:
        return ", ".join(k for k in keys if k not in points) or ""

    goals: list[Goal] = []
    grpc_top, rest_top = f"grpc.batching_on.c{top}", f"rest.batching_on.c{top}"
    limit32 = inprocess_best(results.get("inprocess", {}), 32)
    b32 = limit32.get("images_per_s")
    g = Goal(
        "grpc_vs_inprocess",
        f"gRPC Predict c{top} batching on / in-process batch 32",
        0.35,
        ">=",
        "x",
        ratio(pt(grpc_top), b32),
    )
    g.detail = f"{pt(grpc_top) or 0:.0f} req/s vs {b32 or 0:.0f} images/s" + _rule(limit32)
    floor, ours = pt(f"floor.grpc.c{top}"), pt(grpc_top)
    if floor and b32:  # the transport's ceiling in the same run: what the target asks of grpc.aio
        share = f"ours {ours / floor:.2f}x of it; " if ours is not None else ""
        g.detail += (
            f"; grpc.aio empty-handler floor {floor:.0f} req/s ({share}the target needs "
            f"{g.target * b32:.0f} req/s = {g.target * b32 / floor:.0%} of it)"
        )
    g.missing = need(grpc_top) or ("in-process not measured" if b32 is None else "")
    goals.append(g)

    g = Goal(  # issue 30: what the stack's own Python leaves of what grpc.aio gives any server here
        "grpc_vs_floor",
        f"gRPC Predict c{top} batching on / grpc.aio canned-reply floor c{top}",
        0.6,
        ">=",
        "x",
        ratio(ours, floor),
    )
    g.detail = f"{ours or 0:.0f} vs {floor or 0:.0f} req/s" + _floor_bound(
        results, points.get(grpc_top, {}), points.get(f"floor.grpc.c{top}", {})
    )
    g.missing = need(grpc_top, f"floor.grpc.c{top}")
    goals.append(g)

    g = Goal(
        "grpc_vs_naive",
        f"gRPC Predict c{top} batching on / naive FastAPI c{top}",
        100,
        ">=",
        "x",
        ratio(pt(grpc_top), pt(f"naive.c{top}")),
    )
    g.detail = f"{pt(grpc_top) or 0:.0f} vs {pt(f'naive.c{top}') or 0:.1f} req/s"
    g.missing = need(grpc_top, f"naive.c{top}")
    goals.append(g)

    g = Goal(
        "rest_vs_grpc",
        f"REST predict / gRPC Predict, c{top} batching on, same requests",
        0.5,
        ">=",
        "x",
        ratio(pt(rest_top), pt(grpc_top)),
    )
    g.detail = f"{pt(rest_top) or 0:.0f} vs {pt(grpc_top) or 0:.0f} req/s"
    g.missing = need(rest_top, grpc_top)
    goals.append(g)

    g = Goal(
        "rest_vs_bentoml",
        f"REST predict / BentoML (adaptive batching), c{top}",
        3,
        ">=",
        "x",
        ratio(pt(rest_top), pt(f"bentoml.c{top}")),
    )
    g.detail = f"{pt(rest_top) or 0:.0f} vs {pt(f'bentoml.c{top}') or 0:.0f} req/s"
    g.missing = need(rest_top, f"bentoml.c{top}")
    goals.append(g)

    g = Goal(
        "rest_refused",
        f"REST predict c{top}: requests refused or dropped",
        0,
        "<=",
        "requests",
        pt(rest_top, "errors"),
    )
    g.detail = (
        f"BentoML c{top}: {pt(f'bentoml.c{top}', 'errors') or 0:.0f} of "
        f"{pt(f'bentoml.c{top}', 'requests') or 0:.0f}"
    )
    g.missing = need(rest_top)
    goals.append(g)

    def vs_best_peer(key: str, what: str, c: int, field: str, op: str, fmt: str, unit: str) -> Goal:
        ours, best = f"rest.batching_on.c{c}", best_peer(points, c, field)
        g = Goal(key, f"{what} / best peer: ours ahead of every peer", 1.0, op, "x")
        g.value = ratio(pt(ours, field), best[1] if best else None)
        g.detail = (
            f"{format(pt(ours, field) or 0, fmt)}{unit} vs {_peer_figures(points, c, field, fmt)}{unit} "
            f"(batching off: {format(pt(f'rest.batching_off.c{c}', field) or 0, fmt)}{unit})"
        )
        g.missing = need(ours) or ("" if best else f"no peer measured at c{c}")
        return g

    goals.append(
        vs_best_peer(
            "rest_vs_best_peer", f"REST predict c{top} req/s (batching on)", top, "rps", ">=", ".0f", ""
        )
    )
    goals.append(
        vs_best_peer(
            "rest_p50_vs_best_peer", f"REST p50 at c{low} (batching on)", low, "p50_ms", "<=", ".2f", " ms"
        )
    )

    up_top, up_low, grpc_low = f"gateway.upload.c{top}", f"gateway.upload.c{low}", f"grpc.batching_on.c{low}"
    g = Goal(
        "gateway_vs_grpc",
        f"gateway PNG upload / direct gRPC Predict, c{top}, same image",
        0.5,
        ">=",
        "x",
        ratio(pt(up_top), pt(grpc_top)),
    )
    g.detail = f"{pt(up_top) or 0:.0f} vs {pt(grpc_top) or 0:.0f} req/s"
    g.missing = need(up_top, grpc_top)
    goals.append(g)

    a, b = pt(up_low, "p50_ms"), pt(grpc_low, "p50_ms")
    g = Goal(
        "gateway_added_p50",
        f"gateway added p50 at c{low} (upload p50 - gRPC p50)",
        2.0,
        "<=",
        "ms",
        None if a is None or b is None else a - b,
    )
    a99, b99 = pt(up_low, "p99_ms"), pt(grpc_low, "p99_ms")
    g.detail = f"{a or 0:.2f} - {b or 0:.2f} ms; added p99 {(a99 or 0) - (b99 or 0):.2f} ms"
    g.missing = need(up_low, grpc_low)
    goals.append(g)

    swap = results.get("hotswap")
    g = Goal(
        "hotswap_failed",
        "hot swap: failed requests",
        0,
        "<=",
        "requests",
        None if not swap else float(swap["failed"]),
    )
    g.detail = "" if not swap else f"of {swap['requests']} requests"
    g.missing = "" if swap else "hot swap not measured"
    goals.append(g)

    phases: dict[str, dict[str, Any]] = swap["phases"] if swap else {}
    during, before = phases.get("during", {}), phases.get("before", {})
    g = Goal(
        "hotswap_p99",
        "hot swap: p99 during / p99 steady (before)",
        1.5,
        "<=",
        "x",
        ratio(during["p99_ms"], before["p99_ms"]) if during.get("requests") else None,
    )
    control = (swap or {}).get("control", {}).get("phases", {})
    calm = control.get("during", {}).get("requests") and ratio(
        control["during"]["p99_ms"], control["before"]["p99_ms"]
    )
    g.detail = (
        ""
        if not swap
        else f"{during['p99_ms']:.2f} vs {before['p99_ms']:.2f} ms "
        f"({during['requests']} requests during the swap)"
        + (
            f"; control, 1 s of SCHED_IDLE CPU in another process instead of a swap: {calm:.2f}x"
            if calm
            else ""
        )
    )
    g.missing = "" if swap else "hot swap not measured"
    goals.append(g)

    rows = [r for r in results.get("memory", {}).get("models", []) if r.get("estimate_error") is not None]
    worst = max(rows, key=lambda r: abs(r["estimate_error"]), default=None)
    g = Goal(
        "ram_estimate",
        "loader RAM estimate vs measured RSS growth, worst model",
        0.25,
        "<=",
        "%",
        None if worst is None else abs(worst["estimate_error"]),
    )
    g.detail = "; ".join(f"{r['model']} {r['estimate_error']:+.0%}" for r in rows)
    g.missing = "" if rows else "memory not measured (or no estimate in the server log)"
    goals.append(g)
    goals += _issue14_goals(results, pt, low)
    goals += _mobilenet_goals(results, pt)
    return goals


def mobilenet_concurrencies(results: dict[str, Any]) -> tuple[int, int]:
    """The concurrencies the real-size goals are judged at: 16 and 64 in a full run (the run's middle and
    highest ``mobilenet_concurrencies``)."""
    conc = sorted(results.get("settings", {}).get("mobilenet_concurrencies") or [1, 16, 64])
    return conc[len(conc) // 2], conc[-1]


def _mobilenet_goals(results: dict[str, Any], pt: Any) -> list[Goal]:
    """Issue 30: the real-size model (MobileNetV2 224x224x3), each a ratio against the in-process best batch
    throughput of the same run (the model is what should cost) or the best peer on the same model and body."""
    goals: list[Goal] = []
    mid, top = mobilenet_concurrencies(results)
    best = results.get("mobilenet", {}).get("inprocess", {}).get("best", {})
    limit = best.get("images_per_s")
    for key, what, target, point in (
        ("mobilenet_grpc_vs_inprocess", "TF Serving gRPC Predict", 0.9, f"mobilenet.grpc.c{mid}"),
        ("mobilenet_gateway_vs_inprocess", "gateway JPEG upload", 0.8, f"mobilenet.gateway.c{mid}"),
    ):
        ours = pt(point)
        g = Goal(
            key,
            f"MobileNetV2: {what} c{mid} / in-process best batch",
            target,
            ">=",
            "x",
            None if ours is None or not limit else ours / limit,
        )
        g.detail = f"{ours or 0:.1f} req/s vs {limit or 0:.1f} images/s (batch {best.get('batch', '?')})"
        g.detail += _rule(best)
        g.detail += _cpu_figures(results, results.get("points", {}).get(point, {}), best)
        g.missing = (point if ours is None else "") or (
            "" if limit else "MobileNetV2 in-process not measured"
        )
        goals.append(g)
    for c in sorted({mid, top}):
        ours, peer = pt(f"mobilenet.rest.c{c}"), best_peer(results.get("points", {}), c, "rps", "mobilenet.")
        g = Goal(
            f"mobilenet_vs_best_peer_c{c}",
            f"MobileNetV2: REST predict c{c} req/s / best peer, same model and body",
            1.5,
            ">=",
            "x",
            None if ours is None or peer is None or not peer[1] else ours / peer[1],
        )
        g.detail = f"{ours or 0:.1f} req/s vs " + (
            _peer_figures(results.get("points", {}), c, "rps", ".1f", "mobilenet.") or "no peer"
        )
        g.missing = (
            f"mobilenet.rest.c{c}" if ours is None else ("" if peer else "no peer measured on MobileNetV2")
        )
        goals.append(g)
    return goals


def _cpu_ms(point: dict[str, Any], field: str) -> float | None:
    """CPU ms per answered request of one load point: ``field``'s CPU seconds over the requests served in
    the ``wall_s`` they were counted over (the point's rate over its whole wall time, warm-up included)."""
    cpu, rps, wall = point.get(field), point.get("rps"), point.get("wall_s")
    return None if cpu is None or not rps or not wall else cpu / (rps * wall) * 1000


def _cpu_figures(results: dict[str, Any], point: dict[str, Any], best: dict[str, Any]) -> str:
    """What the cores allow: CPU ms per request of the serving processes against the in-process CPU ms per
    image, and the req/s the machine's cores could give at that cost."""
    served, upstream = _cpu_ms(point, "server_cpu_s"), _cpu_ms(point, "upstream_cpu_s")
    alone = best.get("cpu_ms_per_image")
    if served is None or alone is None:
        return ""
    cores = results.get("environment", {}).get("cores") or 0
    total = served + (upstream or 0.0)
    parts = f"gateway {served:.1f} + model server {upstream:.1f}" if upstream is not None else f"{served:.1f}"
    out = f"; CPU per request: {parts} ms vs {alone:.1f} ms per image in process"
    if cores and total and best.get("images_per_s"):
        allowed = cores * 1000 / total
        out += f" ({cores} cores allow {allowed:.0f} req/s = {allowed / best['images_per_s']:.2f}x)"
    return out


def _rule(limit: dict[str, Any]) -> str:
    """The in-process limit's thread rule, when it is not TensorFlow's default (results from before the
    second rule carry none)."""
    rule = limit.get("rule", "")
    return (
        ""
        if not rule or rule.startswith("TensorFlow's default")
        else f" ({rule}, {limit['callers']} caller(s))"
    )


def _floor_bound(results: dict[str, Any], ours: dict[str, Any], floor: dict[str, Any]) -> str:
    """What the cores allow against the transport floor: the CPU per request of our server and of the
    canned-reply floor, the model's own CPU per image in process (batch 32, its cheapest), and the req/s a
    server paying only the floor's transport and the model's compute could reach on the machine's cores - the
    best any server can do here, as a share of the floor."""
    served, canned = _cpu_ms(ours, "server_cpu_s"), _cpu_ms(floor, "server_cpu_s")
    model = inprocess_best(results.get("inprocess", {}), 32).get("cpu_ms_per_image")
    if served is None or canned is None or model is None:
        return ""
    out = (
        f"; CPU per request: ours {served * 1000:.0f} us, the floor's {canned * 1000:.0f} us per reply, "
        f"the model {model * 1000:.0f} us per image in process (batch 32)"
    )
    cores, rate = results.get("environment", {}).get("cores") or 0, floor.get("rps")
    if cores and rate:
        allowed = cores * 1000 / (canned + model)
        out += (
            f" ({cores} cores allow floor + model {allowed:.0f} req/s = {allowed / rate:.2f}x of the floor)"
        )
    return out


def _issue14_goals(results: dict[str, Any], pt: Any, low: int) -> list[Goal]:
    """Issues 14 and 30: latency at the lowest concurrency over the in-process batch-1 call (what the
    serving path adds to the model call, each within 0.4 ms - issue 30 retired "REST p50 <= 0.2x BentoML's",
    which asked for less than the model call itself), and RSS per worker."""
    goals: list[Goal] = []
    limit1 = inprocess_best(results.get("inprocess", {}), 1)
    bs1 = limit1.get("ms_per_call")
    for proto, limit in (("rest", 0.4), ("grpc", 0.4)):
        key = f"{proto}.batching_on.c{low}"
        p50 = pt(key, "p50_ms")
        g = Goal(
            f"{proto}_p50_over_inprocess",
            f"{'REST' if proto == 'rest' else 'gRPC'} p50 at c{low} (batching on) - in-process batch 1 call",
            limit,
            "<=",
            "ms",
            None if p50 is None or bs1 is None else p50 - bs1,
        )
        tf_p50 = pt(f"{proto}.batching_tf.c{low}", "p50_ms")
        g.detail = (
            f"{p50 or 0:.2f} - {bs1 or 0:.2f} ms"
            + _rule(limit1)
            + (f" (TF Serving scheduling: {tf_p50:.2f} ms)" if tf_p50 is not None else "")
        )
        floor_p50 = pt(f"floor.{proto}.c{low}", "p50_ms")
        if floor_p50 is not None:  # what the transport alone costs at c1, measured in the same run
            transport = "uvicorn" if proto == "rest" else "grpc.aio"
            g.detail += f"; {transport} canned-reply floor p50 {floor_p50:.2f} ms"
        g.missing = (
            "" if p50 is not None and bs1 is not None else f"{key} or the in-process limit not measured"
        )
        goals.append(g)
    rss = results.get("rss_bytes", {}).get("modelserver (3 models, batching on)")
    workers = results.get("modelserver_workers", 1)
    g = Goal(
        "modelserver_rss",
        "model server RSS with the three models, per worker",
        450,
        "<=",
        "MiB",
        None if rss is None else rss / workers / 2**20,
    )
    g.detail = "" if rss is None else f"{workers} worker(s), {rss / 2**20:.0f} MiB in all"
    g.missing = "" if rss is not None else "model server RSS not measured"
    goals.append(g)
    return goals
