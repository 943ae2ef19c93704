"""The Live screen: requests per second and latency drawn from the gateway's own /metrics, and the page's
Prometheus text reader."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway
from tests.console.browser import Console

pytestmark = pytest.mark.e2e

EXPOSITION = """# HELP gateway_requests_total HTTP requests handled
# TYPE gateway_requests_total counter
gateway_requests_total{route="/v1/models/{name}:classify",method="POST",status="200"} 7.0
gateway_requests_total{route="/v1/models/{name}:classify",method="POST",status="415"} 2.0
gateway_requests_total{route="/v1/models",method="GET",status="200"} 4.0
gateway_request_seconds_sum{route="/v1/models/{name}:classify",method="POST"} 0.9
gateway_request_seconds_count{route="/v1/models/{name}:classify",method="POST"} 9.0
gateway_request_seconds_bucket{route="/v1/models/{name}:classify",method="POST",le="+Inf"} 9.0
odd_metric{path="a\\"b"} NaN
"""


def test_prometheus_reader_sums_counters_by_label(page: Page, console_gateway: Gateway) -> None:
    Console(page, console_gateway.url).open()
    sums = page.evaluate(
        """async (text) => {
            const m = await import('./js/prometheus.js');
            const samples = m.parsePrometheus(text);
            const by = m.sumBy(samples, 'route', (s) => s.name === 'gateway_requests_total');
            return {count: samples.length, by: Object.fromEntries(by),
                    odd: samples.find((s) => s.name === 'odd_metric').labels.path};
        }""",
        EXPOSITION,
    )
    assert sums["count"] == 7
    assert sums["by"] == {"/v1/models/{name}:classify": 9, "/v1/models": 4}
    assert sums["odd"] == 'a"b'


def test_live_charts_show_request_rate_while_requests_arrive(
    page: Page, console_gateway: Gateway, fashion_files: list[tuple[Path, str]], shots: Path
) -> None:
    console = Console(page, console_gateway.url).open()
    console.screen("live")
    stop = threading.Event()
    image = fashion_files[0][0].read_bytes()

    def traffic() -> None:  # a few requests a second, bounded by the test's own wait below
        with httpx.Client(base_url=console_gateway.url, timeout=30) as client:
            for _ in range(200):
                if stop.is_set():
                    return
                client.post("/v1/models/fashion:classify", files={"file": ("x.png", image, "image/png")})
                stop.wait(0.2)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        # One chart per model (the gateway's `model` metric label), none for the console's own polling.
        classify = page.locator('.live-model[data-model="fashion"]')
        expect(classify.locator("h2")).to_have_text("fashion", timeout=30_000)
        expect(classify.locator(".now.rps")).to_have_text(_positive_number(), timeout=30_000)
        expect(classify.locator(".now.latency")).to_have_text(_positive_number(), timeout=30_000)
        expect(classify.locator(".rps-chart svg path.line")).to_have_count(1)
        expect(page.locator("#live-note")).to_have_text("")
        expect(page.locator('.live-model[data-model=""]')).to_have_count(0)
        expect(page.locator(".live-model h2 code")).to_have_count(0)  # no per-route charts
        console.shot(shots, "live")
    finally:
        stop.set()
        sender.join(30)


def _positive_number():
    import re

    return re.compile(r"^(?!0\.0+$)\d+\.\d+$")
