"""docker-compose.yml and docker-compose.modelserver.yml: valid, and the shape the stack promises."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from modelserver.process.cli import parse_flags
from modelserver.process.options import ServerOptions
from tests.deploy.conftest import (
    COMPOSE_BASE,
    COMPOSE_MODELSERVER,
    REPO_ROOT,
    TEST_ENV,
    InterpolationError,
    compose_plugin,
    flag_value,
    gateway_settings,
    interpolate,
    load_compose,
    real_compose_config,
)


def serving(model: dict[str, Any], name: str) -> dict[str, Any]:
    service = model["services"].get(f"serving-{name}")
    assert service is not None, f"no serving-{name} service for model {name!r} of models.config"
    return service


def replicas(model: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every serving service of one model: ``serving-<name>`` and ``serving-<name>-<n>``."""
    services = sorted(model["services"].items())
    found = [s for key, s in services if re.fullmatch(rf"serving-{name}(-\d+)?", key)]
    assert found, f"no serving service for model {name!r}"
    return found


def test_every_serving_service_belongs_to_a_model(compose: dict[str, Any], models: list[str]) -> None:
    serving_services = [k for k in compose["services"] if k.startswith("serving-")]
    assert sorted(serving_services) == sorted(
        k for n in models for k in compose["services"] if re.fullmatch(rf"serving-{n}(-\d+)?", k)
    )
    assert len(replicas(compose, "fashion")) == 2, "compose runs two replicas of fashion"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "y"}, "y"),
        ("$A/${B}", {"A": "1", "B": "2"}, "1/2"),
        ("$${A}", {"A": "1"}, "${A}"),
    ],
)
def test_interpolate_follows_compose_rules(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


def test_admin_token_is_required() -> None:
    with pytest.raises(InterpolationError, match="GATEWAY_ADMIN_TOKEN"):
        load_compose(COMPOSE_BASE, env={})


def test_one_official_tf_serving_service_per_model(compose: dict[str, Any], models: list[str]) -> None:
    for name in models:
        for service in replicas(compose, name):
            image = service["image"]
            assert re.fullmatch(r"tensorflow/serving:\d+\.\d+\.\d+", image), f"unpinned serving image {image}"
            assert service["entrypoint"] == ["tensorflow_model_server"]
            argv = service["command"]
            # every replica polls its model's config file: the desired state the gateway writes
            assert flag_value(argv, "model_config_file") == f"/models/config/{name}.config"
            assert int(flag_value(argv, "model_config_file_poll_wait_seconds")) >= 1
            assert int(flag_value(argv, "file_system_poll_wait_seconds")) >= 1
            assert service["network_mode"] == "host"
            assert service["restart"] in ("always", "unless-stopped")
            assert any(v.endswith(":/models:ro") for v in service["volumes"]), "mount models read-only"


def test_modelserver_cli_accepts_every_serving_command(compose: dict[str, Any], models: list[str]) -> None:
    """The override runs ``python -m modelserver`` with these very flags: our CLI must take them all."""
    for name in models:
        for service in replicas(compose, name):
            argv = service["command"]
            options = parse_flags(argv)
            assert options.model_config_file == f"/models/config/{name}.config"
            assert str(options.port) == flag_value(argv, "port")
            assert str(options.rest_api_port) == flag_value(argv, "rest_api_port")


def test_each_model_config_file_serves_exactly_its_model(models: list[str]) -> None:
    """The seeds of MODELS_DIR/config/<model>.config (make compose-models copies them when absent)."""
    from gateway.rollout.catalog import load_model_config

    for name in models:
        config = load_model_config(REPO_ROOT / "models" / "config" / f"{name}.config")
        assert [(c.name, c.base_path) for c in config.model_config_list.config] == [(name, f"models/{name}")]


def test_serving_healthcheck_asks_its_own_model_status(compose: dict[str, Any], models: list[str]) -> None:
    for name in models:
        for service in replicas(compose, name):
            probe = " ".join(service["healthcheck"]["test"])
            rest_port = flag_value(service["command"], "rest_api_port")
            assert f"/dev/tcp/127.0.0.1/{rest_port}" in probe
            assert f"GET /v1/models/{name} " in probe and "AVAILABLE" in probe


def test_every_port_is_distinct(compose: dict[str, Any], models: list[str]) -> None:
    ports = [compose["services"]["gateway"]["environment"]["GATEWAY_PORT"]]
    for name in models:
        for service in replicas(compose, name):
            argv = service["command"]
            ports += [flag_value(argv, "port"), flag_value(argv, "rest_api_port")]
    assert len(set(ports)) == len(ports), f"host networking needs distinct ports, got {ports}"


def test_gateway_routes_each_model_to_its_serving_service(compose: dict[str, Any], models: list[str]) -> None:
    gateway = compose["services"]["gateway"]
    routes = json.loads(gateway["environment"]["GATEWAY_MODEL_SERVERS"])
    assert sorted(routes) == sorted(models)
    replica_lists = json.loads(gateway["environment"]["GATEWAY_MODEL_REPLICAS"])
    for name in models:
        assert routes[name] == f"127.0.0.1:{flag_value(serving(compose, name)['command'], 'port')}"
        addresses = [f"127.0.0.1:{flag_value(s['command'], 'port')}" for s in replicas(compose, name)]
        assert replica_lists.get(name, [routes[name]]) == addresses, "the gateway must reach every replica"
        for key, service in compose["services"].items():
            if service in replicas(compose, name):
                assert gateway["depends_on"][key] == {"condition": "service_healthy"}
    assert gateway["environment"]["GATEWAY_ADMIN_TOKEN"] == TEST_ENV["GATEWAY_ADMIN_TOKEN"]
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
    assert any(v.endswith(":/models:ro") for v in gateway["volumes"])
    assert any(v.endswith(":/models/config") for v in gateway["volumes"]), "it writes the desired state there"
    files = [
        gateway["environment"]["GATEWAY_MODEL_CONFIG_FILE"],
        *gateway["environment"]["GATEWAY_MODEL_CONFIG_FILES"].split(","),
    ]
    assert sorted(files) == sorted(f"/models/config/{name}.config" for name in models)


def test_gateway_settings_accept_the_compose_environment(compose: dict[str, Any], models: list[str]) -> None:
    settings = gateway_settings(compose["services"]["gateway"]["environment"])
    assert settings.host == "0.0.0.0"
    for name in models:
        assert settings.server_for(name).endswith(f":{flag_value(serving(compose, name)['command'], 'port')}")
        ports = [flag_value(s["command"], "port") for s in replicas(compose, name)]
        assert [t.rsplit(":", 1)[1] for t in settings.replica_targets(name)] == ports


def test_export_is_a_one_shot_profile_writing_the_models_volume(compose: dict[str, Any]) -> None:
    export = compose["services"]["export"]
    assert export["profiles"] == ["export"]
    assert export["restart"] == "no"
    assert export["network_mode"] == "none", "training reads DATA_DIR; it needs no network"
    assert any(v.endswith(":/models") for v in export["volumes"]), "export writes into the models volume"
    assert export["command"][export["command"].index("--models-dir") + 1] == "/models"


def test_modelserver_override_keeps_the_very_same_flags(
    compose: dict[str, Any], compose_modelserver: dict[str, Any], models: list[str]
) -> None:
    for name in models:
        official, ours = serving(compose, name), serving(compose_modelserver, name)
        assert ours["image"].startswith("tfserve/modelserver:")
        assert ours["entrypoint"] == ["python", "-m", "modelserver"]
        for key in ("command", "healthcheck", "volumes", "network_mode", "restart"):
            assert ours[key] == official[key], f"the override changed {key} of serving-{name}"
        environment = ours.get("environment", {})
        # flags, not variables - except the bind address and the control token (a secret stays out of `ps`)
        allowed = {"MODELSERVER_BIND_HOST", "MODELSERVER_MODEL_CONTROL_TOKEN"}
        assert set(environment) <= allowed, "the override passes flags, not variables"
        options = ServerOptions(_env_file=None, bind_host=environment["MODELSERVER_BIND_HOST"])
        assert options.bind_host == "127.0.0.1", "the serving ports must stay off public interfaces"
    assert compose_modelserver["services"]["gateway"] == compose["services"]["gateway"]


def test_env_example_names_every_variable_the_compose_files_use() -> None:
    used: set[str] = set()
    for path in (COMPOSE_BASE, COMPOSE_MODELSERVER):
        used |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    example = (REPO_ROOT / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", example, flags=re.MULTILINE))
    assert used - {"COMPOSE_PROJECT_NAME"} <= defined, f"missing from .env.example: {used - defined}"
    assert re.search(r"^GATEWAY_ADMIN_TOKEN=change-me$", example, flags=re.MULTILINE), (
        ".env.example must carry a placeholder token, never a real one"
    )


@pytest.mark.parametrize(
    "files", [(COMPOSE_BASE,), (COMPOSE_BASE, COMPOSE_MODELSERVER)], ids=["official", "modelserver"]
)
def test_docker_compose_config_accepts_the_files(files: tuple[Any, ...], models: list[str]) -> None:
    """The real ``docker compose config`` validates the files and reads them as the loader above does."""
    command = compose_plugin()
    if command is None:
        pytest.skip("no `docker compose` plugin here (docker/compose-plugin.sh installs one)")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"), **TEST_ENV}
    real = real_compose_config(command, *files, env=env, profiles=("export",))
    ours = load_compose(*files)
    assert sorted(real["services"]) == sorted(ours["services"])
    for name in models:
        service = f"serving-{name}"
        assert real["services"][service]["command"] == ours["services"][service]["command"]
        assert real["services"][service]["image"] == ours["services"][service]["image"]
    real_routes = real["services"]["gateway"]["environment"]["GATEWAY_MODEL_SERVERS"]
    assert json.loads(real_routes) == json.loads(
        ours["services"]["gateway"]["environment"]["GATEWAY_MODEL_SERVERS"]
    )


def test_compose_down_supplies_every_required_variable() -> None:
    """`make compose-down` must stop the stack without .env: `down` interpolates the files too, and fails on a
    ``${VAR:?...}`` that has no value."""
    required: set[str] = set()
    for path in (COMPOSE_BASE, COMPOSE_MODELSERVER):
        required |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", path.read_text()))
    recipe = re.search(r"^compose-down:.*\n\t(.+)$", (REPO_ROOT / "docker" / "compose.mk").read_text(), re.M)
    assert recipe, "docker/compose.mk has a one-line compose-down recipe"
    supplied = set(re.findall(r"\b([A-Z_][A-Z0-9_]*)=\$\$\{\1:-[^}]+\}", recipe[1]))
    assert required and required <= supplied, f"compose-down must supply {sorted(required - supplied)}"
