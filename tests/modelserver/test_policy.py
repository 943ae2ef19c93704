"""modelserver.lifecycle.version_policy: which versions on disk are aspired."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from modelserver.lifecycle.version_policy import (
    AllVersions,
    LatestVersions,
    ServableVersionPolicy,
    SpecificVersions,
    VersionPolicy,
    policy_from_proto,
)

FOUND = [1, 2, 3, 7]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (LatestVersions(1), {7}),
        (LatestVersions(2), {3, 7}),
        (LatestVersions(10), {1, 2, 3, 7}),
        (AllVersions(), {1, 2, 3, 7}),
        (SpecificVersions(frozenset({2, 3})), {2, 3}),
        (SpecificVersions(frozenset({2, 99})), {2}),
        (SpecificVersions(frozenset()), set()),
    ],
)
def test_select(policy: VersionPolicy, expected: set[int]) -> None:
    assert policy.select(FOUND) == expected
    assert policy.select([]) == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", LatestVersions(1)),
        ("latest {}", LatestVersions(1)),
        ("latest { num_versions: 3 }", LatestVersions(3)),
        ("all {}", AllVersions()),
        ("specific { versions: 42 versions: 43 }", SpecificVersions(frozenset({42, 43}))),
    ],
)
def test_policy_from_proto(text: str, expected: VersionPolicy) -> None:
    proto = text_format.Parse(text, ServableVersionPolicy())
    assert policy_from_proto(proto) == expected
