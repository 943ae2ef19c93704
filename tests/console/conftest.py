"""Console test fixtures: the real modelserver and ``python -m gateway`` (which serves the console at ``/``),
and the system Chromium driven by Playwright.

The model repository copies ``housing/1`` from the root ``model_repo`` and exports its own ``fashion`` and
``text`` with the real export code, trained just enough that "the right label" is a fair thing to assert (a
few seconds each): ``text/1`` on 2,500 SMS messages for 3 epochs (the root fixture's one-epoch model has not
learnt spam yet), and ``fashion/1`` on 6,000 images for 3 epochs with a dense head in place of the CNN (the
CNN's BatchNorm statistics need far more steps than a test can afford). ``fashion/2`` is a copy of version
1; both are loaded, for promote / roll back.

Screenshots go to ``tmp_path`` unless ``CONSOLE_SCREENSHOTS`` names a folder (e.g. ``docs/screenshots``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.fashion import FASHION_LABELS, encode, fashion_test_images
from devtools.procs import ServerProcess, free_port
from devtools.servers import Gateway, start_gateway, start_modelserver

ADMIN_TOKEN = "console-test-token-8d2e41b7"

_CONFIG = """model_config_list {{
  config {{ name: "fashion" base_path: "{root}/fashion" model_platform: "tensorflow"
           model_version_policy {{ latest {{ num_versions: 2 }} }} }}
  config {{ name: "text" base_path: "{root}/text" model_platform: "tensorflow"
           model_version_policy {{ latest {{ num_versions: 1 }} }} }}
  config {{ name: "housing" base_path: "{root}/housing" model_platform: "tensorflow"
           model_version_policy {{ latest {{ num_versions: 1 }} }} }}
}}
"""


@pytest.fixture(scope="session")
def console_repo(model_repo: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras  # TensorFlow loads here (already loaded by model_repo)

    import export.fashion
    from export.api import export_model

    def dense_head() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28, 1), name="image"),
                keras.layers.Flatten(),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(len(FASHION_LABELS), activation="softmax", name="probabilities"),
            ],
            name="fashion_dense",
        )

    root = tmp_path_factory.mktemp("console_repo")
    shutil.copytree(model_repo / "housing" / "1", root / "housing" / "1")
    export_model("text", root, version=1, epochs=3, limit=2500, data_dir=data_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export.fashion, "build_model", dense_head)
        export_model("fashion", root, version=1, epochs=3, limit=6000, data_dir=data_dir)
    shutil.copytree(root / "fashion" / "1", root / "fashion" / "2")
    (root / "models.config").write_text(_CONFIG.format(root=root.resolve()), encoding="utf-8")
    return root


@pytest.fixture(scope="package")
def console_modelserver(
    console_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    logs = tmp_path_factory.mktemp("console_modelserver")
    with start_modelserver(
        console_repo / "models.config", rest=False, log_path=logs / "modelserver.log"
    ) as server:
        yield server


@pytest.fixture(scope="package")
def console_gateway(
    console_modelserver: ServerProcess, console_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    logs = tmp_path_factory.mktemp("console_gateway")
    env = {
        "GATEWAY_DEFAULT_MODEL_SERVER": console_modelserver.grpc_target,  # type: ignore[attr-defined]
        "GATEWAY_MODEL_CONFIG_FILE": str(console_repo / "models.config"),
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    gateway = start_gateway(env, logs / "gateway.log")
    try:
        yield gateway
    finally:
        gateway.process.stop()


@pytest.fixture(scope="package")
def orphan_gateway(console_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose model server is down (nothing listens on its port): the degraded console."""
    logs = tmp_path_factory.mktemp("console_orphan")
    env = {
        "GATEWAY_DEFAULT_MODEL_SERVER": f"127.0.0.1:{free_port()}",
        "GATEWAY_MODEL_CONFIG_FILE": str(console_repo / "models.config"),
        "GATEWAY_RETRIES": "0",
        "GATEWAY_METADATA_TIMEOUT_SECONDS": "2",
    }
    gateway = start_gateway(env, logs / "gateway.log")
    try:
        yield gateway
    finally:
        gateway.process.stop()


@pytest.fixture
def api(console_gateway: Gateway) -> Iterator[httpx.Client]:
    """The same gateway over plain HTTP, to cross-check what the page shows."""
    with console_gateway.client() as client:
        yield client


@pytest.fixture
def fresh_rollout(api: httpx.Client) -> Iterator[None]:
    """Every model on its config's policy (no pin, no labels) before and after the test."""

    def reset() -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for model in api.get("/v1/models").json()["models"]:
            if model.get("canary"):
                api.delete(f"/v1/admin/models/{model['name']}/canary", headers=headers).raise_for_status()
                model = next(m for m in api.get("/v1/models").json()["models"] if m["name"] == model["name"])
            for label in model["labels"]:
                api.delete(f"/v1/admin/models/{model['name']}/labels/{label}", headers=headers)
            if model["pinned"] is not None:
                api.post(f"/v1/admin/models/{model['name']}:latest", headers=headers).raise_for_status()

    reset()
    yield
    reset()


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from tests.console.browser import chromium_path, launch_chromium

    if chromium_path() is None:
        message = "Chromium is missing: install Debian's `chromium` package (make test does it when root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser context per test (its own sessionStorage: no admin token carried over)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors in the console: {errors}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    return Path(folder).resolve() if folder else tmp_path / "screenshots"


@pytest.fixture(scope="session")
def fashion_files(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    """The first six Fashion-MNIST test images as PNG files, with their true label."""
    folder = tmp_path_factory.mktemp("fashion_png")
    files = []
    for index, (image, label) in enumerate(fashion_test_images(data_dir, 6)):
        name = FASHION_LABELS[label].replace("/", "-").replace(" ", "-").lower()
        path = folder / f"{index}-{name}.png"
        path.write_bytes(encode(image, "PNG"))
        files.append((path, FASHION_LABELS[label]))
    return files
