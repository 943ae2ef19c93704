"""The peers live in venvs of their own: ``make bench-tools`` never installs a peer into the stack's venv, so
the stack's protobuf stays the one pyproject asks for (kserve would pull it below 7); the bench finds each
peer's python and version in its own venv."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from bench.peer_envs import PEER_PACKAGES, REQUIREMENTS_DIR, peer_python, peer_version
from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _recipe_lines() -> list[str]:
    return [line.strip() for line in (REPO_ROOT / "bench" / "bench.mk").read_text().splitlines()]


def _requirements(peer: str) -> list[Requirement]:
    lines = (REQUIREMENTS_DIR / f"{peer}.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_the_stack_venv_protobuf_is_the_one_pyproject_asks_for() -> None:
    wanted = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("protobuf"))
    installed = metadata.version("protobuf")
    assert SpecifierSet(str(wanted.specifier)).contains(installed), (installed, str(wanted))


def test_bench_tools_never_installs_a_peer_with_the_stack_pip() -> None:
    stack_pip = [line for line in _recipe_lines() if re.search(r"\$\((PY|VENV)\).*pip", line)]
    assert stack_pip, "bench.mk no longer installs the bench extra"
    for line in stack_pip:
        assert "-r " not in line and "requirements" not in line, line
        assert not any(peer in line for peer in PEER_PACKAGES.values()), line
    peer_pip = [line for line in _recipe_lines() if "pip install" in line and "-r " in line]
    assert peer_pip and all(line.startswith(".venv-$*/bin/python") for line in peer_pip), peer_pip


def test_no_extra_of_the_stack_holds_a_peer() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = {Requirement(r).name.lower() for name in ("bench", "dev") for r in extras[name]}
    for peer, package in PEER_PACKAGES.items():
        assert package not in declared, peer
        assert package in {r.name.lower() for r in _requirements(peer)}, peer


def test_each_peer_venv_pins_tensorflow_at_the_stack_minor() -> None:
    tf_extra = PYPROJECT["project"]["optional-dependencies"]["tf"]
    stack = next(Requirement(r) for r in tf_extra if r.startswith("tensorflow=="))
    for peer in PEER_PACKAGES:
        tf = [r for r in _requirements(peer) if r.name == "tensorflow"]
        assert [str(r.specifier) for r in tf] == [str(stack.specifier)], peer


def test_peer_version_is_read_from_its_own_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_PEER_VENVS", str(tmp_path))
    assert peer_version(REPO_ROOT, "kserve") is None  # no venv
    venv = tmp_path / ".venv-kserve"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    assert peer_version(REPO_ROOT, "kserve") is None  # a venv without the peer
    dist = venv / "lib" / "python3.11" / "site-packages" / "kserve-0.21.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kserve\nVersion: 0.21.0\n")
    assert peer_version(REPO_ROOT, "kserve") == "0.21.0"
    assert peer_python(REPO_ROOT, "kserve") == venv / "bin" / "python"
