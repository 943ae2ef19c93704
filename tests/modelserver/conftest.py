"""Fixtures for modelserver tests.

- ``tiny``: a session folder of hand-built SavedModels (``tests.support.tiny_models``): ``half_plus_two``,
  ``half_plus_three``, ``multi_input``, ``strings``. Read-only: copy versions with ``install``.
- ``install(src, base, version)``: publish a copy of a built model as ``base/<version>`` the way the export
  does (copy to a hidden staging name, then one atomic rename).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import tiny_models

Install = Callable[[Path, Path, int], Path]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "half_plus_two": tiny_models.half_plus_two(root / "half_plus_two"),
        "half_plus_three": tiny_models.half_plus_two(root / "half_plus_three", b=3.0),
        "multi_input": tiny_models.multi_input(root / "multi_input"),
        "strings": tiny_models.strings(root / "strings"),
    }


def publish(source: Path, base: Path, version: int) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, staging)
    target = base / str(version)
    os.rename(staging, target)
    return target


@pytest.fixture
def install() -> Install:
    return publish
