"""reliability.security: admin tokens, path traversal, clean replies, non-root containers, size and rate
limits - against the real gateway and modelserver."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import security
from reliability.outcome import Outcome
from reliability.stack import Stack

pytestmark = pytest.mark.e2e


def test_admin_refuses_missing_and_wrong_tokens(stack: Stack) -> None:
    outcome = Outcome("security", "admin")
    figures = security.admin_auth(stack, outcome)
    assert outcome.failures == []
    assert figures["bad_credentials_refused"] == figures["bad_credentials_tried"] > 0


def test_names_versions_labels_cannot_leave_the_repository(stack: Stack) -> None:
    outcome = Outcome("security", "traversal")
    figures = security.traversal(stack, outcome)
    assert outcome.failures == []
    assert figures["traversal_refused"] == figures["traversal_tried"]


def test_replies_carry_no_tracebacks_or_addresses(stack: Stack) -> None:
    outcome = Outcome("security", "replies")
    security.replies(stack, outcome)
    assert outcome.failures == []


def test_images_and_k8s_run_as_non_root() -> None:
    users = security.container_users()
    ours = {k: v for k, v in users.items() if k.startswith(("Dockerfile:", "k8s:"))}
    assert ours and security.root_containers(ours) == []


def test_compose_services_run_as_non_root() -> None:
    assert security.root_containers(security.container_users()) == []


def test_oversized_body_is_refused(stack: Stack) -> None:
    outcome = Outcome("security", "size")
    security.size_limit(stack, outcome)
    assert outcome.failures == []


def test_rate_limit_cuts_a_burst(stack: Stack, tmp_path: Path) -> None:
    outcome = Outcome("security", "rate")
    security.rate_limit(stack, outcome, tmp_path)
    assert outcome.failures == []
