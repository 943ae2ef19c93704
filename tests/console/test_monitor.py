"""The Monitor screen on a real stack: the model server serving the exported models (reference profiles
included) and the gateway reading its drift reports (GATEWAY_MONITOR_URL). Fashion-MNIST test images,
then the same images inverted: the screen shows fashion's drift state, its histograms and the PSI over time.
The screenshot (``monitor-drift.png``) goes to ``CONSOLE_SCREENSHOTS`` (docs/img for the README)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway, ModelServerHandle, start_gateway, start_modelserver
from tests.console.browser import Console
from tests.modelserver.test_drift import EVERY_REQUEST, Traffic, fashion_rows, inverted
from tests.modelserver.test_request_log import MONITORING

pytestmark = pytest.mark.e2e


@pytest.fixture
def monitored(model_repo: Path, tmp_path: Path) -> Iterator[tuple[ModelServerHandle, Gateway]]:
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(MONITORING)
    flags = [f"--monitoring_config_file={monitoring}", *EVERY_REQUEST]
    with start_modelserver(
        model_repo / "models.config", extra_flags=flags, log_path=tmp_path / "modelserver.log"
    ) as server:
        env = {
            "GATEWAY_DEFAULT_MODEL_SERVER": server.grpc_target,  # type: ignore[attr-defined]
            "GATEWAY_MODEL_CONFIG_FILE": str(model_repo / "models.config"),
            "GATEWAY_MONITOR_URL": server.url,  # type: ignore[attr-defined]
        }
        gateway = start_gateway(env, tmp_path / "gateway.log")
        try:
            yield server, gateway  # type: ignore[misc]
        finally:
            gateway.process.stop()


def test_monitor_shows_a_real_shift(
    monitored: tuple[ModelServerHandle, Gateway], data_dir: Path, page: Page, shots: Path
) -> None:
    server, gateway = monitored
    traffic = Traffic(server, "fashion", fashion_rows(data_dir))
    with gateway.client() as api:
        for _ in range(30):  # 1500 test images, then 500 inverted
            traffic.send(10)
        for _ in range(10):
            traffic.send(10, inverted)
        report = api.get("/v1/models/fashion/drift")
        assert report.status_code == 200
        assert api.get("/v1/models/nope/drift").status_code == 404
    Console(page, gateway.url).open("monitor")
    fashion = page.locator('.monitor-version[data-model="fashion"]')
    expect(fashion.locator(".state")).to_have_text("drift")
    expect(fashion.locator(".feature.drifting").first).to_be_visible()
    shots.mkdir(parents=True, exist_ok=True)
    fashion.screenshot(path=str(shots / "monitor-drift.png"))
