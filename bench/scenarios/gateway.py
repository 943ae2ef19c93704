"""Scenarios 4 and 7: the gateway's image-upload path (PNG upload -> label) against direct gRPC Predict of
the same image on the same model server, and text / housing through the gateway at concurrency 8 against
direct gRPC Predict of the same input; ``:explain`` of the same upload at the lowest concurrency. Also the
gateway's RSS after the load."""

from __future__ import annotations

import json
from typing import Any

from bench.errors import BenchError
from bench.loadgen import http_load
from bench.procs import ServerProcess, http_get
from bench.scenarios.modelserver import grpc_point
from bench.servers import start_gateway

__all__ = ["run"]

JSON = "application/json"


def _check(url: str, body: bytes, content_type: str, expect: str) -> str:
    """One request like the load generator's: "" if the answer holds ``expect``, else what went wrong."""
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = reply.read().decode("utf-8", errors="replace")
    except OSError as exc:
        detail = exc.read().decode(errors="replace")[:200] if hasattr(exc, "read") else ""
        return f"{exc} {detail}".strip()
    return "" if expect in text else f"unexpected answer: {text[:200]}"


def _explain_point(ctx: Any, gateway: ServerProcess, url: str, p: Any) -> None:
    """The cost of ``:explain`` (the model runs ``steps`` times, 32 by default): one image at concurrency 1,
    the lowest concurrency, beside the upload -> label point there. Skipped for models exported without the
    explain signature."""
    s = ctx.settings
    problem = _check(url, p.upload_fashion.read_bytes(), p.upload_content_type, '"attributions"')
    ctx.results.setdefault("verified", {})["gateway.explain"] = problem or "ok"
    if problem:
        ctx.skip("gateway explain", f"the gateway does not explain the upload: {problem}")
        return
    c = min(s.concurrencies)
    ctx.point(
        f"gateway.explain.c{c}",
        gateway,
        lambda: http_load(
            url,
            p.upload_fashion,
            p.upload_content_type,
            concurrency=c,
            duration_s=s.duration_s,
            timeout_s=s.http_timeout_s,
            warmup_s=s.warmup_s,
        ),
    )


def run(ctx: Any, modelserver: ServerProcess) -> None:
    s, p = ctx.settings, ctx.payloads
    config = ctx.work / "all.config"
    try:
        gateway = start_gateway(ctx, modelserver.ports["grpc"], config)
    except BenchError as exc:
        ctx.skip("gateway", str(exc).splitlines()[0])
        return
    with gateway:
        base = f"http://127.0.0.1:{gateway.ports['http']}"
        upload_url = f"{base}/v1/models/fashion:classify"
        problem = _check(upload_url, p.upload_fashion.read_bytes(), p.upload_content_type, '"label"')
        ctx.results.setdefault("verified", {})["gateway.upload"] = problem or "ok"
        if problem:
            ctx.skip("gateway upload", f"the gateway does not answer the upload correctly: {problem}")
        else:
            for c in s.concurrencies:
                ctx.point(
                    f"gateway.upload.c{c}",
                    gateway,
                    lambda c=c: http_load(
                        upload_url,
                        p.upload_fashion,
                        p.upload_content_type,
                        concurrency=c,
                        duration_s=s.duration_s,
                        timeout_s=s.http_timeout_s,
                        warmup_s=s.warmup_s,
                    ),
                )
            ctx.profile(
                gateway,
                "gateway upload",
                lambda: http_load(
                    upload_url,
                    p.upload_fashion,
                    p.upload_content_type,
                    concurrency=max(s.concurrencies),
                    duration_s=s.profile_s + 2,
                ),
            )

        _explain_point(ctx, gateway, f"{base}/v1/models/fashion:explain", p)

        c = 8 if 8 in s.concurrencies else max(s.concurrencies)
        bodies = {
            "text": (f"{base}/v1/models/text:classify", {"texts": [p.sms]}, '"label"', p.grpc_text),
            "housing": (
                f"{base}/v1/models/housing:regress",
                {"records": [{k: v for k, v in p.house.items()}]},
                '"value"',
                p.grpc_housing,
            ),
        }
        for name, (url, payload, expect, grpc_body) in bodies.items():
            path = ctx.work / f"{name}-gateway.json"
            path.write_text(json.dumps(payload))
            problem = _check(url, path.read_bytes(), JSON, expect)
            ctx.results.setdefault("verified", {})[f"gateway.{name}"] = problem or "ok"
            if problem:
                ctx.skip(f"gateway {name}", f"the gateway does not answer {name} correctly: {problem}")
                continue
            ctx.point(
                f"gateway.{name}.c{c}",
                gateway,
                lambda url=url, path=path: http_load(
                    url,
                    path,
                    JSON,
                    concurrency=c,
                    duration_s=s.duration_s,
                    timeout_s=s.http_timeout_s,
                    warmup_s=s.warmup_s,
                ),
            )
            grpc_point(ctx, modelserver, f"grpc.{name}.c{c}", grpc_body, c)
        ctx.results.setdefault("rss_bytes", {})["gateway"] = gateway.rss_bytes()
        status, metrics = http_get(f"{base}/metrics")
        ctx.results["gateway_metrics_served"] = status == 200 and bool(metrics)
