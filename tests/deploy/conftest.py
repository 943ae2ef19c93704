"""Fixtures for the deployment files: compose files, Dockerfile, .env.example, Kubernetes manifests.

No Docker daemon is needed. The compose files are read the way ``docker compose config`` reads them (YAML with
merge keys, ``${VAR:-default}`` interpolation from an environment, override files merged over the base), so
the structural tests run on machines without the compose plugin; where the plugin exists, test_compose.py
also runs the real ``docker compose config`` and checks that both readings agree.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_BASE = REPO_ROOT / "docker-compose.yml"
COMPOSE_MODELSERVER = REPO_ROOT / "docker-compose.modelserver.yml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
MODELS_CONFIG = REPO_ROOT / "models" / "models.config"
# What a test passes for the one variable without a default.
TEST_ENV = {"GATEWAY_ADMIN_TOKEN": "compose-test-token-0123456789abcdef"}

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty, as compose reports it."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``, ``${VAR:?e}``."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?") and not (current if op == ":?" else current is not None):
            raise InterpolationError(f"{name}: {arg}")
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def _merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; anything else (command, entrypoint, scalars) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def load_compose(*files: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective compose model of ``files`` (later files override earlier ones), ``x-`` keys dropped."""
    env = dict(TEST_ENV if env is None else env)
    model: dict[str, Any] = {}
    for path in files:
        loaded = yaml.safe_load(path.read_text())
        model = _merge(model, {k: v for k, v in loaded.items() if not k.startswith("x-")})
    return _interpolate_tree(model, env)


def compose_plugin() -> list[str] | None:
    """The command that runs Compose v2 here (``docker compose``), or None when there is none."""
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    return ["docker", "compose"] if probe.returncode == 0 else None


def real_compose_config(
    command: list[str], *files: Path, env: Mapping[str, str], profiles: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``docker compose config --format json`` with exactly ``env`` (no .env file of the checkout)."""
    args = [*command, "--env-file", "/dev/null", "--project-directory", str(REPO_ROOT)]
    for path in files:
        args += ["-f", str(path)]
    for profile in profiles:
        args += ["--profile", profile]
    done = subprocess.run(
        [*args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(env),
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, f"docker compose config failed: {done.stderr}"
    return json.loads(done.stdout)


def gateway_settings(environment: Mapping[str, str]) -> Any:
    """The gateway's real Settings built from a deployment's GATEWAY_* variables (config file paths, which
    live on the models volume there, point at the same files under models/ here). Fails on a variable the
    gateway lacks."""
    from gateway.settings import Settings

    fields = set(Settings.model_fields)
    values: dict[str, Any] = {}
    for key, value in environment.items():
        assert key.startswith("GATEWAY_"), f"{key}: the gateway reads only GATEWAY_* variables"
        field_name = key.removeprefix("GATEWAY_").lower()
        assert field_name in fields, f"{key} is not a gateway setting (gateway/settings.py)"
        values[field_name] = _local(value) if field_name.startswith("model_config_file") else value
    return Settings(_env_file=None, **values)


def _local(value: str) -> str:
    """Config file paths on the models volume (``/models/...``) as files of this checkout (``models/...``)."""
    paths = [p.strip() for p in value.split(",") if p.strip()]
    return ",".join(
        str(REPO_ROOT / p.lstrip("/")) if p.startswith("/models/") else str(MODELS_CONFIG) for p in paths
    )


def model_names() -> list[str]:
    """The models listed in models/models.config, in order."""
    return re.findall(r'name:\s*"([^"]+)"', MODELS_CONFIG.read_text())


def flag_value(argv: list[str], flag: str) -> str:
    """The value of ``--flag=value`` in ``argv``; fails the test when it is absent."""
    for arg in argv:
        if arg.startswith(f"--{flag}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"--{flag} missing from {argv}")


@pytest.fixture(scope="session")
def models() -> list[str]:
    names = model_names()
    assert names, "models/models.config lists no model"
    return names


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """The production compose model (official TF Serving) with default settings."""
    return load_compose(COMPOSE_BASE)


@pytest.fixture(scope="session")
def compose_modelserver() -> dict[str, Any]:
    """The compose model with our modelserver override applied."""
    return load_compose(COMPOSE_BASE, COMPOSE_MODELSERVER)


@pytest.fixture(scope="session")
def k8s_documents() -> dict[str, list[dict[str, Any]]]:
    """Every Kubernetes object under deploy/k8s (kustomization.yaml aside), by file name."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(K8S_DIR.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }
