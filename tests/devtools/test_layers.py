"""The layers written in pyproject's [tool.importlinter] hold, and `lint-imports` (run by `make check`) fails
when one is broken: a deliberate bad import in a copy of the tree. Each folder is a section of
docs/architecture.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("modelserver", "gateway", "export", "guard")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_tree_keeps_every_layer(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        (
            "modelserver/runtime/session.py",
            "import modelserver.lifecycle.manager",
            "modelserver.runtime is below",
        ),
        (
            "modelserver/lifecycle/manager.py",
            "import modelserver.protocols.http",
            "modelserver.lifecycle is below",
        ),
        (
            "modelserver/protocols/tfs/rest.py",
            "import modelserver.process.server",
            "modelserver.protocols is below",
        ),
        ("gateway/upstream/client.py", "import tensorflow", "gateway is independent of"),
        ("gateway/upstream/contract.py", "import gateway.routes.inference", "gateway.upstream is below"),
        ("export/card.py", "import gateway.settings", "export and modelserver never import gateway"),
        ("modelserver/dataplane.py", "import export.card", "modelserver never imports export"),
        (
            "modelserver/lifecycle/manager.py",
            "import modelserver.observe.request_log",
            "modelserver.lifecycle and runtime never",
        ),
    ],
)
def test_a_bad_import_breaks_make_check(tree: Path, module: str, bad_import: str, contract: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{bad_import}  # deliberate layering violation\n")
    result = _lint(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout


def test_every_folder_is_a_section_of_the_architecture_page() -> None:
    headings = [
        line.split("`")[1]
        for line in (REPO / "docs" / "architecture.md").read_text().splitlines()
        if line.startswith("#") and "`" in line
    ]
    folders = [
        f"{path.relative_to(REPO)}/"
        for package in ("modelserver", "gateway")
        for path in sorted([REPO / package, *(REPO / package).rglob("*")])
        if path.is_dir()
        and "__pycache__" not in path.parts
        and not path.is_relative_to(REPO / "gateway" / "static" / "js")
    ]
    assert [folder for folder in folders if folder not in headings] == []
