"""Stacks for the fast reliability subset (the full suite is ``make reliability``).

- ``stack``: all three exported models, default gateway settings plus ``attack.attack_options`` (hostile
  uploads, security, fuzzing, the independent attack).
- ``exhaustion_stack``: all three models, ``exhaustion.exhaustion_options`` (a short body deadline), alone:
  its attacks take the model server to its open-file limit and trim its heap, which would move the memory
  baselines of the other scenarios (``make reliability`` gives it its own stack too).
- ``housing_stack``: the housing model only, the modelserver as ``nobody`` when the tests run as root, so
  file permissions apply to it (bad versions, faults, hot swaps). Tests may change its repository.

Both are real ``python -m modelserver`` / ``python -m gateway`` processes on free loopback ports, serving
private copies of the session's ``model_repo``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.attack import attack_options
from reliability.exhaustion import exhaustion_options
from reliability.repo import copy_repo
from reliability.stack import Stack, StackOptions
from reliability.suite import MAX_UPLOAD_BYTES, privileges, workdir


def _remove(work: Path) -> None:
    for path in work.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(model_repo: Path) -> Iterator[Stack]:
    work = workdir("tfserve-reliability-test-")
    repo = copy_repo(model_repo, work / "repo")
    options = attack_options(StackOptions(gateway_env={"GATEWAY_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}))
    try:
        with Stack.start(repo, work / "run", options) as running:
            yield running
    finally:
        _remove(work)


@pytest.fixture(scope="module")
def exhaustion_stack(model_repo: Path) -> Iterator[Stack]:
    work = workdir("tfserve-reliability-test-")
    repo = copy_repo(model_repo, work / "repo")
    try:
        with Stack.start(repo, work / "run", exhaustion_options()) as running:
            yield running
    finally:
        _remove(work)


@pytest.fixture(scope="session")
def housing_stack(model_repo: Path) -> Iterator[Stack]:
    uid, _ = privileges()
    work = workdir("tfserve-reliability-test-")
    repo = copy_repo(model_repo, work / "repo", ("housing",))
    try:
        with Stack.start(repo, work / "run", StackOptions(modelserver_user=uid)) as running:
            yield running
    finally:
        _remove(work)


@pytest.fixture(scope="session")
def permission_cases() -> bool:
    return privileges()[1]
