"""The Models screen in a real browser: models, versions and states, model cards, and the admin controls
refused without the right token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway
from tests.console.browser import Console
from tests.console.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e


def test_lists_every_model_with_versions_states_and_classes(
    page: Page, console_gateway: Gateway, api: httpx.Client, fresh_rollout: None, shots: Path
) -> None:
    console = Console(page, console_gateway.url).open()
    listed = api.get("/v1/models").json()["models"]
    expect(page.locator("article.model")).to_have_count(len(listed))
    for model in listed:
        article = console.model(model["name"])
        rows = article.locator("tbody tr")
        expect(rows).to_have_count(len(model["versions"]))
        for status in model["versions"]:
            row = article.locator(f"tr[data-version='{status['version']}']")
            expect(row.locator(".state")).to_have_text("available")
    fashion = console.model("fashion")
    expect(fashion.locator(".serving-version")).to_have_text("v2")
    expect(fashion.locator(".task")).to_have_text("image classification")
    expect(fashion.locator(".classes")).to_contain_text("Ankle boot")
    console.shot(shots, "models")


def test_model_card_shows_signatures_of_the_version(page: Page, console_gateway: Gateway) -> None:
    console = Console(page, console_gateway.url).open()
    fashion = console.model("fashion")
    fashion.locator("tr[data-version='1']").get_by_role("button", name="Model card").click()
    panel = fashion.locator(".card-panel")
    expect(panel.locator("h3")).to_have_text("Model card · fashion v1")
    expect(panel.locator(".signatures")).to_contain_text("serving_default")
    expect(panel.locator(".signatures")).to_contain_text("image: float32[-1, 28, 28, 1]")


def test_admin_controls_are_refused_without_the_token(
    page: Page, console_gateway: Gateway, api: httpx.Client, fresh_rollout: None
) -> None:
    console = Console(page, console_gateway.url).open()
    fashion = console.model("fashion")
    expect(page.locator("#readonly-note")).to_be_visible()
    promote = fashion.get_by_role("button", name="Promote fashion version 1")
    expect(promote).to_be_disabled()
    expect(fashion.get_by_role("button", name="Roll back fashion")).to_be_disabled()
    expect(fashion.get_by_role("button", name="Set label")).to_be_disabled()
    # The gateway refuses too: the page is not the only guard.
    assert api.post("/v1/admin/models/fashion:promote", json={"version": 1}).status_code == 401

    # A wrong token: the controls unlock, the gateway refuses, the page says so, nothing changes.
    console.use_token("not-the-admin-token-0000")
    expect(promote).to_be_enabled()
    message = console.promote("fashion", 1)
    assert "refused" in message and "HTTP 401" in message
    expect(fashion.locator(".serving-version")).to_have_text("v2")
    models = {m["name"]: m for m in api.get("/v1/models").json()["models"]}
    assert models["fashion"]["pinned"] is None


def test_token_stays_in_the_tab_only(page: Page, console_gateway: Gateway) -> None:
    console = Console(page, console_gateway.url).open()
    console.use_token(ADMIN_TOKEN)
    stored = page.evaluate(
        "() => [Object.keys(localStorage).length, document.cookie, Object.values(sessionStorage)]"
    )
    assert stored[0] == 0 and stored[1] == ""
    assert ADMIN_TOKEN in stored[2]
    page.get_by_role("button", name="Forget").click()
    expect(page.locator("#token-state")).to_have_text("read-only")
    assert page.evaluate("() => Object.values(sessionStorage)") == []
