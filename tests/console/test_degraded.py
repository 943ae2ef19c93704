"""The console when the model server is down: it says so clearly, keeps working, and errors stay readable."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway
from tests.console.browser import Console

pytestmark = pytest.mark.e2e


def test_model_server_down_shows_a_banner_and_readable_errors(
    page: Page, orphan_gateway: Gateway, shots: Path
) -> None:
    console = Console(page, orphan_gateway.url).open()
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Not ready: fashion, text, housing")
    expect(banner).to_contain_text("model server is down")
    expect(page.locator("#ready-state")).to_have_text("● not ready")
    fashion = console.model("fashion")
    expect(fashion.locator(".error")).to_contain_text("Model server unavailable")
    expect(fashion.locator(".error")).to_contain_text("model server")
    expect(fashion.locator("tbody")).to_contain_text("No version is loaded")
    console.shot(shots, "degraded")

    console.screen("try")
    page.get_by_label("Model", exact=True).select_option("text")
    error = page.locator("#try-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("HTTP 503")
    assert "{" not in error.inner_text()
