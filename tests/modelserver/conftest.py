"""Fixtures for modelserver tests.

- ``tiny``: a session folder of hand-built SavedModels (``devtools.tiny_models``): ``half_plus_two``,
  ``half_plus_three``, ``multi_input``, ``strings``. Read-only: copy versions with ``install``.
- ``install(src, base, version)``: ``tiny_models.publish`` - copy a built model in as ``base/<version>``
  with one atomic rename, as the export does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devtools import tiny_models

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


@pytest.fixture
def install() -> Install:
    return tiny_models.publish
