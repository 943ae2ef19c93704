"""Version management from the browser with the admin token: promote and roll back change the version that
answers the next request, and the model list follows by itself (polling)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway
from devtools.waiting import wait_until
from tests.console.browser import Console
from tests.console.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e


def test_promote_changes_the_version_of_the_next_answer_and_roll_back_restores_it(
    page: Page,
    console_gateway: Gateway,
    fashion_files: list[tuple[Path, str]],
    fresh_rollout: None,
    shots: Path,
) -> None:
    console = Console(page, console_gateway.url).open()
    image = [fashion_files[0][0]]
    console.classify_images(image)
    assert console.answered_version() == 2

    console.use_token(ADMIN_TOKEN)
    message = console.promote("fashion", 1)
    assert "version 1 promoted" in message, message
    fashion = console.model("fashion")
    expect(fashion.locator(".serving-version")).to_have_text("v1")
    expect(fashion.locator(".answering")).to_contain_text("pinned")
    console.shot(shots, "models-admin")
    console.classify_images(image)
    assert console.answered_version() == 1

    message = console.rollback("fashion")
    assert "rolled back" in message, message
    expect(fashion.locator(".serving-version")).to_have_text("v2")
    console.classify_images(image)
    assert console.answered_version() == 2


def test_label_set_in_the_page_selects_the_version(
    page: Page,
    console_gateway: Gateway,
    api: httpx.Client,
    fashion_files: list[tuple[Path, str]],
    fresh_rollout: None,
) -> None:
    console = Console(page, console_gateway.url).open()
    console.use_token(ADMIN_TOKEN)
    fashion = console.model("fashion")
    fashion.get_by_label("Label", exact=True).fill("stable")
    fashion.get_by_label("Version for the label of fashion").select_option("1")
    fashion.get_by_role("button", name="Set label").click()
    expect(fashion.locator(".admin-msg")).to_contain_text("now points at version 1")
    expect(fashion.locator("tr[data-version='1'] .chip")).to_contain_text("stable")
    console.pick_model("fashion", version="label “stable” → v1")
    page.locator("#image-input").set_input_files([str(fashion_files[0][0])])
    expect(page.locator("#try-results .answered-version")).to_have_text("1")
    console.screen("models")
    fashion.get_by_role("button", name="Remove label stable of fashion").click()
    expect(fashion.locator(".chip")).to_have_count(0)
    models = {m["name"]: m for m in api.get("/v1/models").json()["models"]}
    assert models["fashion"]["labels"] == {}


def test_cluster_line_and_a_canary_started_and_aborted_in_the_page(
    page: Page, console_gateway: Gateway, api: httpx.Client, fresh_rollout: None, shots: Path
) -> None:
    console = Console(page, console_gateway.url).open()
    fashion = console.model("fashion")
    expect(fashion.locator(".cluster .converged")).to_have_text("converged")
    expect(fashion.locator(".cluster .replica-chip")).to_have_count(1)
    console.use_token(ADMIN_TOKEN)
    fashion.get_by_label("Candidate version of fashion").select_option("1")
    fashion.get_by_label("weight %").fill("25")
    fashion.get_by_role("button", name="Set canary").click()
    expect(fashion.locator(".admin-msg")).to_contain_text("version 1 answers 25 % of requests")
    expect(fashion.locator(".canary")).to_contain_text("Canary v1 vs stable v2: 25 % of requests")
    expect(fashion.locator("tr[data-version='1'] .chip")).to_contain_text("canary")
    console.shot(shots, "models-canary")
    assert (
        next(m for m in api.get("/v1/models").json()["models"] if m["name"] == "fashion")["canary"]["weight"]
        == 25
    )
    fashion.get_by_role("button", name="Abort the canary of fashion").click()
    expect(fashion.locator(".canary")).to_have_count(0)
    fashion.locator(".events summary").click()
    expect(fashion.locator(".events")).to_contain_text("canary v1 ended: aborted")


def test_model_list_refreshes_by_itself(
    page: Page, console_gateway: Gateway, api: httpx.Client, fresh_rollout: None
) -> None:
    console = Console(page, console_gateway.url).open()
    fashion = console.model("fashion")
    expect(fashion.locator(".serving-version")).to_have_text("v2")
    # Another operator pins version 1 through the API; the open page follows without a reload.
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    api.post("/v1/admin/models/fashion:promote", json={"version": 1}, headers=headers).raise_for_status()
    expect(fashion.locator(".serving-version")).to_have_text("v1", timeout=20_000)


def test_newly_published_version_appears_without_a_reload(
    page: Page, console_gateway: Gateway, console_repo: Path, api: httpx.Client, fresh_rollout: None
) -> None:
    console = Console(page, console_gateway.url).open()
    housing = console.model("housing")
    expect(housing.locator(".serving-version")).to_have_text("v1")
    # Publish housing/2 the way the export does: stage under a non-numeric name, then one rename.
    staging = console_repo / "housing" / ".tmp-2-console"
    shutil.copytree(console_repo / "housing" / "1", staging)
    os.rename(staging, console_repo / "housing" / "2")
    try:
        expect(housing.locator("tr[data-version='2'] .state")).to_have_text("available", timeout=60_000)
        expect(housing.locator(".serving-version")).to_have_text("v2")
    finally:
        os.rename(console_repo / "housing" / "2", staging)
        shutil.rmtree(staging)
        _wait_until_served(api, "housing", 1)


def _wait_until_served(api: httpx.Client, name: str, version: int) -> None:
    def served() -> bool:
        models = {m["name"]: m for m in api.get("/v1/models").json()["models"]}
        states = {v["version"]: v["state"] for v in models[name]["versions"]}
        others = [s for v, s in states.items() if v != version]
        return states.get(version) == "AVAILABLE" and all(s == "END" for s in others)

    wait_until(served, f"{name} v{version} to be the only version served again")
