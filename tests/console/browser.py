"""The system Chromium (Debian's ``chromium`` package) driven by Playwright; a page object for the console.

Playwright's own browser download is never used: ``launch_chromium`` starts ``/usr/bin/chromium`` (or
``$CHROMIUM``) headless, with the flags a container needs and nothing that talks to the network. Shared by
the browser tests and by ``python -m tests.console.screenshots``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, expect

__all__ = ["CHROMIUM_ARGS", "Console", "chromium_path", "launch_chromium"]

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
WAIT_MS = 30_000
# Assertions retry until this long: generous, as CI shares two cores between servers, tests and the browser.
expect.set_options(timeout=15_000)


def chromium_path() -> str | None:
    """The system Chromium, or None when it is not installed (``make test`` installs it)."""
    for candidate in (os.environ.get("CHROMIUM", ""), "/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def launch_chromium(playwright: Playwright) -> Browser:
    path = chromium_path()
    if path is None:
        raise RuntimeError("Chromium is missing: `apt-get install chromium` (make test does it as root)")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)


class Console:
    """What a person does in the console, one method per action; assertions wait (Playwright ``expect``)."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/") + "/"
        page.set_default_timeout(WAIT_MS)

    # navigation --------------------------------------------------------------------------------------
    def open(self, screen: str = "models") -> Console:
        self.page.goto(f"{self.base_url}#{screen}")
        expect(self.page.locator("#models-list")).to_have_attribute("aria-busy", "false")
        return self

    def screen(self, name: str) -> None:
        self.page.get_by_role(
            "link", name={"models": "Models", "try": "Try it", "live": "Live"}[name]
        ).click()
        expect(self.page.locator(f"section[data-screen={name}]")).to_be_visible()

    def model(self, name: str):
        return self.page.locator(f"article.model[data-model='{name}']")

    # admin token -------------------------------------------------------------------------------------
    def use_token(self, token: str) -> None:
        self.page.get_by_label("Admin token").fill(token)
        self.page.get_by_role("button", name="Use", exact=True).click()
        expect(self.page.locator("#token-state")).to_have_text("admin")

    def promote(self, model: str, version: int) -> str:
        self.screen("models")
        article = self.model(model)
        article.get_by_role("button", name=f"Promote {model} version {version}").click()
        message = article.locator(".admin-msg")
        expect(message).not_to_have_text(re.compile(r"^(Working…)?$"), timeout=90_000)
        return message.inner_text()

    def rollback(self, model: str) -> str:
        self.screen("models")
        article = self.model(model)
        article.get_by_role("button", name=f"Roll back {model}").click()
        message = article.locator(".admin-msg")
        expect(message).not_to_have_text(re.compile(r"^(Working…)?$"), timeout=90_000)
        return message.inner_text()

    # try it ------------------------------------------------------------------------------------------
    def pick_model(self, name: str, version: str = "as served (default)") -> None:
        self.screen("try")
        self.page.get_by_label("Model", exact=True).select_option(name)
        expect(self.page.locator("#try-task")).not_to_have_text(re.compile(r"^(Reading.*)?$"))
        self.page.get_by_label("Version", exact=True).select_option(label=version)

    def classify_images(self, files: Sequence[Path], k: int = 3) -> None:
        self.pick_model("fashion")
        self.page.get_by_label("Top-k").fill(str(k))
        self.page.locator("#image-input").set_input_files([str(f) for f in files])
        self._wait_answer()

    def classify_text(self, text: str) -> None:
        self.pick_model("text")
        self.page.get_by_label("Message").fill(text)
        self.page.get_by_role("button", name="Classify").click()
        self._wait_answer()

    def predict_housing(self, features: dict[str, float] | None = None) -> None:
        self.pick_model("housing")
        if features is None:
            self.page.get_by_role("button", name="Fill an example").click()
        else:
            for name, value in features.items():
                self.page.locator(f"#feature-{name}").fill(str(value))
        self.page.get_by_role("button", name="Predict").click()
        self._wait_answer()

    def _wait_answer(self) -> None:
        self.page.wait_for_function(
            "() => document.querySelector('#try-results .answered') ||"
            " !document.querySelector('#try-error').hidden"
        )

    def answered_version(self) -> int:
        return int(self.page.locator("#try-results .answered-version").inner_text())

    def try_error(self) -> str:
        return (
            self.page.locator("#try-error").inner_text()
            if self.page.locator("#try-error").is_visible()
            else ""
        )

    def shot(self, folder: Path | None, name: str) -> None:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            # No focus ring, and scrolled to the top (the sticky header stays at the top of the picture).
            self.page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
            self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
