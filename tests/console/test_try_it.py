"""The "Try it" screen in a real browser against the real gateway and modelserver: images, text, records,
and readable errors. Each answer on the page is cross-checked with the same request sent to the API."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.servers import Gateway
from tests.console.browser import Console

pytestmark = pytest.mark.e2e

SPAM = (
    "WINNER!! You have been selected to receive a £900 prize reward! "
    "To claim call 09061701461. Claim code KL341."
)
HAM = "Sorry I'm late, I'll be home in ten minutes. Do we need milk?"
HOUSE = {
    "longitude": -122.23,
    "latitude": 37.88,
    "housing_median_age": 41,
    "total_rooms": 880,
    "total_bedrooms": 129,
    "population": 322,
    "households": 126,
    "median_income": 8.3252,
}


def test_uploaded_fashion_images_show_their_top_labels(
    page: Page,
    console_gateway: Gateway,
    api: httpx.Client,
    fashion_files: list[tuple[Path, str]],
    shots: Path,
    fresh_rollout: None,
) -> None:
    console = Console(page, console_gateway.url).open("try")
    console.classify_images([path for path, _ in fashion_files], k=3)
    cards = page.locator(".image-result")
    expect(cards).to_have_count(len(fashion_files))
    shown = [cards.nth(i).locator(".top-label").inner_text() for i in range(len(fashion_files))]
    # The page shows, per file and in order, what the API answers for the same bytes...
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p, _ in fashion_files]
    reply = api.post("/v1/models/fashion:classify", params={"k": 3}, files=files).json()
    assert shown == [p["label"] for p in reply["predictions"]]
    assert cards.first.locator(".bars li").count() == 3
    assert console.answered_version() == reply["version"] == 2
    # ...and that is the right label for real Fashion-MNIST test images (an ~80% model: most of them).
    truth = [label for _, label in fashion_files]
    right = sum(label == true for label, true in zip(shown, truth, strict=True))
    assert right >= len(fashion_files) - 2, list(zip(shown, truth, strict=True))
    assert shown[0] == truth[0] == "Ankle boot"
    console.shot(shots, "try-image")


def test_spam_message_is_flagged_and_ham_is_not(page: Page, console_gateway: Gateway, shots: Path) -> None:
    console = Console(page, console_gateway.url).open("try")
    console.classify_text(HAM)
    # the verdict is built from the contract's two classes ["ham", "spam"], not from a label in the console
    expect(page.locator(".verdict")).to_have_class("verdict negative")
    expect(page.locator(".verdict")).to_have_attribute("data-label", "ham")
    console.classify_text(SPAM)
    verdict = page.locator(".verdict")
    expect(verdict).to_have_class("verdict positive")
    expect(verdict).to_have_attribute("data-label", "spam")
    expect(verdict).to_contain_text("Spam")
    assert page.locator(".answered-model").inner_text() == "text"
    console.shot(shots, "try-text")


def test_housing_form_is_built_from_the_contract_and_predicts(
    page: Page, console_gateway: Gateway, api: httpx.Client, shots: Path
) -> None:
    console = Console(page, console_gateway.url).open("try")
    console.pick_model("housing")
    # One labelled field per numeric input of the model's input contract.
    contract = api.get("/v1/models/housing").json()["inputs"]
    for name in contract:
        expect(page.get_by_label(name.replace("_", " "), exact=False).first).to_be_visible()
    console.predict_housing()
    shown = page.locator(".predicted-value").inner_text()
    value = api.post("/v1/models/housing:regress", json={"records": [HOUSE]}).json()["predictions"][0][
        "value"
    ]
    assert shown == f"${value:,.0f}"
    console.shot(shots, "try-housing")


def test_bad_input_gets_a_readable_error_not_json(
    page: Page, console_gateway: Gateway, tmp_path: Path
) -> None:
    console = Console(page, console_gateway.url).open("try")
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"this is not an image at all")
    console.classify_images([fake])
    message = console.try_error()
    assert "HTTP 415" in message
    assert "{" not in message and "Traceback" not in message
    # A record with a word instead of a number is caught in the page, with the field named.
    console.pick_model("housing")
    page.locator("#feature-median_income").fill("lots")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#try-error")).to_contain_text("median_income")


DROP = """({b64, name}) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], name, {type: "image/png"}));
    const zone = document.getElementById("dropzone");
    for (const type of ["dragenter", "dragover", "drop"])
        zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


def test_image_dropped_on_the_drop_zone_is_classified(
    page: Page, console_gateway: Gateway, fashion_files: list[tuple[Path, str]]
) -> None:
    console = Console(page, console_gateway.url).open()
    console.pick_model("fashion")
    path, truth = fashion_files[2]  # a Trouser
    page.evaluate(DROP, {"b64": base64.b64encode(path.read_bytes()).decode(), "name": path.name})
    result = page.locator(".image-result")
    expect(result).to_have_count(1)
    expect(result.locator(".file-name")).to_have_text(path.name)
    expect(result.locator(".top-label")).to_have_text(truth)
