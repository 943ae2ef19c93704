""" "Explain" in Try it, in a real browser against the real gateway and modelserver: the heat map over the
uploaded image with its opacity slider, highlighted words, the housing contribution chart - each
cross-checked with the same ``:explain`` request sent to the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway
from tests.console.browser import Console
from tests.console.test_try_it import HOUSE, SPAM

pytestmark = pytest.mark.e2e


def test_explain_overlays_a_heat_map_on_the_uploaded_image(
    page: Page,
    console_gateway: Gateway,
    api: httpx.Client,
    fashion_files: list[tuple[Path, str]],
    shots: Path,
    fresh_rollout: None,
) -> None:
    console = Console(page, console_gateway.url).open("try")
    files = [path for path, _ in fashion_files[:2]]
    console.classify_images(files, k=3)
    card = page.locator(".image-result").first
    card.get_by_role("button", name="Explain").click()
    heat = card.locator(".overlay-stack img.heat")
    expect(heat).to_be_visible()
    page.wait_for_function(
        "() => { const img = document.querySelector('.overlay-stack img.heat');"
        " return img && img.complete && img.naturalWidth > 0; }"
    )
    assert heat.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [224, 224]
    # the slider sets the layer's opacity
    assert heat.evaluate("img => img.style.opacity") == "0.7"
    card.locator("input.opacity").fill("35")
    assert heat.evaluate("img => img.style.opacity") == "0.35"
    # the class explained is the answer shown, as the API explains it
    reply = api.post(
        "/v1/models/fashion:explain", files=[("file", (files[0].name, files[0].read_bytes(), "image/png"))]
    ).json()
    label = card.locator(".top-label").inner_text()
    assert reply["predictions"][0]["label"] == label
    expect(card.locator(".explain-image")).to_contain_text(f"Why “{label}”")
    card.locator("input.opacity").fill("70")
    console.shot(shots, "explain")


def test_explain_highlights_the_words_of_a_message(
    page: Page, console_gateway: Gateway, api: httpx.Client
) -> None:
    console = Console(page, console_gateway.url).open("try")
    console.classify_text(SPAM)
    page.locator("#try-results").get_by_role("button", name="Explain").click()
    marks = page.locator(".tokens mark.token")
    expect(marks.first).to_be_visible()
    reply = api.post("/v1/models/text:explain", json={"texts": [SPAM]}).json()
    tokens = reply["predictions"][0]["tokens"]
    assert marks.all_inner_texts() == [t["token"] for t in tokens]
    shown = [float(w) for w in marks.evaluate_all("els => els.map(e => e.dataset.weight)")]
    assert shown == pytest.approx([t["weight"] for t in tokens], rel=1e-5, abs=1e-9)
    # the strongest word is painted, in red when it pushes towards the explained class
    strongest = max(range(len(tokens)), key=lambda i: abs(tokens[i]["weight"]))
    colour = marks.nth(strongest).evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour.startswith("rgba(220, 38, 38" if tokens[strongest]["weight"] > 0 else "rgba(37, 99, 235")


def test_explain_charts_what_each_feature_adds_to_the_house_value(
    page: Page, console_gateway: Gateway, api: httpx.Client, shots: Path
) -> None:
    console = Console(page, console_gateway.url).open("try")
    console.predict_housing()
    page.locator("#try-results").get_by_role("button", name="Explain").click()
    rows = page.locator(".contributions li")
    expect(rows).to_have_count(8)
    reply = api.post("/v1/models/housing:explain", json={"records": [HOUSE]}).json()
    features = reply["predictions"][0]["features"]
    largest = sorted(features, key=lambda f: -abs(f["contribution"]))
    assert rows.evaluate_all("els => els.map(e => e.dataset.feature)") == [f["feature"] for f in largest]
    shown = [float(v) for v in rows.evaluate_all("els => els.map(e => e.dataset.contribution)")]
    assert shown == pytest.approx([f["contribution"] for f in largest], rel=1e-5)
    console.shot(shots, "explain-housing")
