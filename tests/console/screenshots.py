"""Screenshots of every console screen for the README, taken from a running stack (``make run``)::

    .venv/bin/python -m tests.console.screenshots --url http://127.0.0.1:8000 \\
        --token-file .run/admin-token --out docs/screenshots

Uses real Fashion-MNIST test images from ``$DATA_DIR`` and the same page object as the browser tests. It
promotes the previous fashion version (when there is one) for the versions screenshot and then returns the
model to its config's policy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from devtools.fashion import FASHION_LABELS, encode, fashion_test_images
from tests.console.browser import Console, launch_chromium

SPAM = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward! "
    "To claim call 09061701461. Claim code KL341. Valid 12 hours only."
)


def _images(data_dir: Path, folder: Path, count: int = 6) -> list[Path]:
    paths = []
    for index, (image, label) in enumerate(fashion_test_images(data_dir, count)):
        path = folder / f"{FASHION_LABELS[label].replace('/', '-').lower()}-{index}.png"
        path.write_bytes(encode(image, "PNG"))
        paths.append(path)
    return paths


def _traffic(url: str, image: bytes, stop: threading.Event) -> None:
    """A few requests a second to every model so the Live charts have something to draw (bounded)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(300):
            if stop.is_set():
                return
            client.post("/v1/models/fashion:classify", files={"file": ("x.png", image, "image/png")})
            client.post("/v1/models/text:classify", json={"texts": [SPAM]})
            stop.wait(0.3)


def take(url: str, token: str, out: Path, data_dir: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        images = _images(data_dir, Path(tmp))
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        console = Console(page, url).open()
        console.shot(out, "models")

        console.classify_images(images, k=3)
        console.shot(out, "try-image")
        console.classify_text(SPAM)
        console.shot(out, "try-text")
        console.predict_housing()
        console.shot(out, "try-housing")

        models = {m["name"]: m for m in httpx.get(f"{url}/v1/models", timeout=30).json()["models"]}
        versions = sorted(v["version"] for v in models["fashion"]["versions"])
        if token and len(versions) > 1:
            admin = {"Authorization": f"Bearer {token}"}
            httpx.post(f"{url}/v1/admin/models/fashion:latest", headers=admin, timeout=90)
            console.use_token(token)
            console.promote("fashion", versions[-2])
            article = console.model("fashion")
            article.get_by_label("Label", exact=True).fill("canary")
            article.get_by_label("Version for the label of fashion").select_option(str(versions[-1]))
            article.get_by_role("button", name="Set label").click()
            article.locator(".chip", has_text="canary").wait_for()
            row = article.locator(f"tr[data-version='{versions[-2]}']")
            row.get_by_role("button", name="Model card").click()
            page.wait_for_timeout(1000)
            console.shot(out, "versions")
            httpx.delete(f"{url}/v1/admin/models/fashion/labels/canary", headers=admin, timeout=90)
            httpx.post(f"{url}/v1/admin/models/fashion:latest", headers=admin, timeout=90)

        stop = threading.Event()
        sender = threading.Thread(target=_traffic, args=(url, images[0].read_bytes(), stop), daemon=True)
        sender.start()
        console.screen("live")
        page.wait_for_timeout(30_000)
        console.shot(out, "live")
        stop.set()
        sender.join(30)
        browser.close()
    return sorted(out.glob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token-file", type=Path, default=Path(".run/admin-token"))
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "../shared/data")))
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file.is_file() else ""
    for path in take(args.url, token, args.out, args.data_dir):
        print(path)


if __name__ == "__main__":
    main()
