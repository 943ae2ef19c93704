"""Each peer (BentoML, Ray Serve, KServe) runs from a venv of its own, never from the stack's: kserve 0.21
holds protobuf < 7 where the stack runs 7, and a benchmark must not change the environment it measures.

``make bench-tools`` creates ``.venv-<peer>`` in the checkout from ``bench/baselines/requirements/<peer>.txt``
(the peer, TensorFlow at the stack's minor to load the same SavedModel, numpy - nothing of the stack); the bench
starts the peer's service with that venv's python (``BENCH_PEER_VENVS`` names another folder holding the
``.venv-<peer>`` directories). The peer's version is read from the venv's own ``site-packages``, without
importing anything from it.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

__all__ = ["PEER_PACKAGES", "REQUIREMENTS_DIR", "peer_python", "peer_venv", "peer_version"]

# The peer's results key -> the distribution that is the peer (its version goes into the results).
PEER_PACKAGES: dict[str, str] = {"bentoml": "bentoml", "ray": "ray", "kserve": "kserve"}
REQUIREMENTS_DIR = Path(__file__).resolve().parent / "baselines" / "requirements"


def peer_venv(repo_root: Path, name: str) -> Path:
    """``<checkout>/.venv-<name>`` (or under ``$BENCH_PEER_VENVS``)."""
    base = os.environ.get("BENCH_PEER_VENVS")
    return (Path(base) if base else repo_root) / f".venv-{name}"


def peer_python(repo_root: Path, name: str) -> Path:
    return peer_venv(repo_root, name) / "bin" / "python"


def peer_version(repo_root: Path, name: str) -> str | None:
    """The peer's version installed in its own venv, or None when the venv or the peer is missing."""
    venv = peer_venv(repo_root, name)
    if not (venv / "bin" / "python").exists():
        return None
    site = [str(p) for p in sorted(venv.glob("lib/python*/site-packages"))]
    for dist in metadata.distributions(path=site):
        if (dist.metadata["Name"] or "").lower() == PEER_PACKAGES[name]:
            return str(dist.version)
    return None
