"""Version policies: which of the versions found on disk a model should serve (``ServableVersionPolicy``).

Contract: ``select(found)`` is a pure function from the set of complete version numbers under a base path to
the aspired subset. ``latest {num_versions: N}`` (the default, N=1) keeps the N highest, ``all {}`` keeps
every one, ``specific {versions: ...}`` keeps those listed that exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tfs_protos.tensorflow_serving.config import file_system_storage_path_source_pb2 as fs_pb2

__all__ = ["AllVersions", "LatestVersions", "SpecificVersions", "VersionPolicy", "policy_from_proto"]

# The generated message class (a runtime value for mypy, hence Any).
ServableVersionPolicy: Any = fs_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy


class VersionPolicy:
    """Chooses the aspired versions among those present."""

    def select(self, found: Iterable[int]) -> set[int]:
        raise NotImplementedError


@dataclass(frozen=True)
class LatestVersions(VersionPolicy):
    num_versions: int = 1

    def select(self, found: Iterable[int]) -> set[int]:
        return set(sorted(found, reverse=True)[: self.num_versions])


@dataclass(frozen=True)
class AllVersions(VersionPolicy):
    def select(self, found: Iterable[int]) -> set[int]:
        return set(found)


@dataclass(frozen=True)
class SpecificVersions(VersionPolicy):
    versions: frozenset[int]

    def select(self, found: Iterable[int]) -> set[int]:
        return set(found) & self.versions


def policy_from_proto(proto: Any) -> VersionPolicy:
    """The policy a ``model_version_policy`` message describes (unset = latest 1, like TF Serving)."""
    kind = proto.WhichOneof("policy_choice")
    if kind == "all":
        return AllVersions()
    if kind == "specific":
        return SpecificVersions(frozenset(int(v) for v in proto.specific.versions))
    if kind == "latest":
        return LatestVersions(max(1, int(proto.latest.num_versions or 1)))
    return LatestVersions(1)
