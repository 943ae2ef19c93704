"""Session fixtures shared by every part's tests.

- ``data_dir``: the shared real datasets (``$DATA_DIR``, else ``../shared/data`` beside the checkout). When
  they
  are absent the test is skipped with a message - or fails when ``CI=true``, where the data must be present.
- Markers: ``e2e`` (set by a module: real processes on loopback ports) and ``trains`` (set here on every
  test that uses ``model_repo``, directly or through a fixture). ``make test-unit`` runs neither - the fast
  tier for the edit-test loop; ``make test`` runs everything.
- ``model_repo``: a session-scoped model repository with ``fashion/1``, ``text/1``, ``housing/1`` built by the
  real export code (small slices, one epoch) and a ``models.config`` with absolute base paths. Treat it as
  read-only; copy a model folder into ``tmp_path`` to test version changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools.exported import build_model_repo

REPO_ROOT = Path(__file__).resolve().parent.parent


def _find_data_dir() -> Path | None:
    candidates = [os.environ.get("DATA_DIR", ""), str(REPO_ROOT.parent / "shared" / "data")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "fashion-mnist").is_dir():
            return Path(candidate).resolve()
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "model_repo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trains)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = _find_data_dir()
    if found is None:
        message = (
            f"the shared datasets were not found (DATA_DIR={os.environ.get('DATA_DIR', '')!r}, "
            f"{REPO_ROOT.parent / 'shared' / 'data'}); set DATA_DIR to the folder holding fashion-mnist/"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def model_repo(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model repository: ``<repo>/{fashion,text,housing}/1`` and ``<repo>/models.config``."""
    return build_model_repo(tmp_path_factory.mktemp("model_repo"), data_dir)
