"""Accessibility basics of the console: every control has a label, screens switch from the keyboard, and
the page loads only its own assets (no CDN)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway
from tests.console.browser import Console

pytestmark = pytest.mark.e2e

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => el.getClientRects().length > 0)
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                    && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize(
    ("screen", "model"), [("models", None), ("try", "fashion"), ("try", "text"), ("try", "housing")]
)
def test_every_visible_control_has_a_label(
    page: Page, console_gateway: Gateway, screen: str, model: str | None
) -> None:
    console = Console(page, console_gateway.url).open()
    if model:
        console.pick_model(model)
    else:
        console.screen(screen)
    assert page.evaluate(UNLABELLED) == []


def test_screens_switch_from_the_keyboard(page: Page, console_gateway: Gateway) -> None:
    Console(page, console_gateway.url).open()
    page.get_by_role("link", name="Try it").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#screen-try")).to_be_visible()
    expect(page.locator("#h-try")).to_be_focused()
    page.get_by_label("Model", exact=True).select_option("text")
    page.get_by_label("Message").fill("Ok, see you at home tonight")
    page.get_by_label("Message").press("Tab")
    page.keyboard.press("Enter")  # focus is on "Classify"
    expect(page.locator(".verdict")).to_be_visible()


def test_every_request_stays_on_the_gateway(page: Page, console_gateway: Gateway) -> None:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    console = Console(page, console_gateway.url).open()
    console.screen("live")
    page.wait_for_timeout(2500)
    assert seen and all(url.startswith(console_gateway.url + "/") for url in seen), seen
