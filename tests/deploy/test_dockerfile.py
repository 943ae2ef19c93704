"""docker/Dockerfile, .dockerignore and docker/constraints.txt: the images run what the CLIs accept."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from export.__main__ import parse_args as export_parse_args
from modelserver.process.cli import parse_flags
from tests.deploy.conftest import COMPOSE_BASE, DOCKERFILE, REPO_ROOT, gateway_settings, load_compose

FINAL_STAGES = ("gateway", "modelserver", "export")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]


Parsed = tuple[dict[str, str], dict[str, Stage]]


def parse_dockerfile(text: str) -> Parsed:
    """(global ARG defaults, stages by name): continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(pending)
            pending = ""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest.strip(), flags=re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            current = stages[match[2]] = Stage(match[2], match[1])
        elif current is None:
            assert keyword == "ARG", f"only ARG may precede the first FROM: {line}"
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        else:
            current.instructions.append((keyword, rest.strip()))
    return args, stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (a JSON list): {args}"
    return value


def dockerignore_includes(path: str) -> bool:
    """Whether the build context sends ``path``: the last matching .dockerignore pattern decides."""
    included = True
    for raw in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if pattern == "**":
            matches = True
        elif pattern.startswith("**/"):
            tail = pattern[3:]
            matches = any(fnmatch.fnmatch(part, tail) for part in path.split("/"))
        else:
            matches = fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/")
        if matches:
            included = negate
    return included


@pytest.fixture(scope="module")
def dockerfile() -> Parsed:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_base_image_is_the_one_local_base_builds(dockerfile: Parsed) -> None:
    args, _ = dockerfile
    base = args["BASE_IMAGE"]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", base) and not base.endswith(":latest"), f"unpinned base {base}"
    assert f"BASE_IMAGE:-{base}" in (REPO_ROOT / "docker" / "local-base.sh").read_text()
    assert f"BASE_IMAGE ?= {base}" in (REPO_ROOT / "docker" / "compose.mk").read_text()


@pytest.mark.parametrize("target", FINAL_STAGES)
def test_final_images_run_as_an_unprivileged_user(dockerfile: Parsed, target: str) -> None:
    _, stages = dockerfile
    assert stages[target].last("USER") not in ("root", "0")


@pytest.mark.parametrize("target", FINAL_STAGES)
def test_entrypoint_runs_the_package_of_the_same_name(dockerfile: Parsed, target: str) -> None:
    _, stages = dockerfile
    assert exec_form(stages[target].last("ENTRYPOINT")) == ["python", "-m", target]


def test_gateway_image_has_no_tensorflow_and_checks_readyz(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    gateway_deps = " ".join(stages["gateway-deps"].all("RUN"))
    assert '".[gateway]"' in gateway_deps
    assert not re.search(r"\.\[[^\]]*\b(tf|export|modelserver|dev)\b", gateway_deps)
    assert stages["gateway"].base == "runtime"
    healthcheck = stages["gateway"].last("HEALTHCHECK")
    assert "/readyz" in healthcheck and "CMD" in healthcheck


def test_gateway_image_environment_names_gateway_settings(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    environment = {}
    for env in stages["gateway"].all("ENV"):
        environment.update(pair.split("=", 1) for pair in env.replace("\\", " ").split())
    assert gateway_settings(environment).host == "0.0.0.0"


def test_export_command_is_accepted_by_the_export_cli(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    args = export_parse_args(exec_form(stages["export"].last("CMD")))
    assert args.model == "all" and args.models_dir == "/models"


def test_modelserver_command_is_accepted_by_the_modelserver_cli(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    options = parse_flags(exec_form(stages["modelserver"].last("CMD")))
    assert options.model_config_file == "/models/models.config"
    assert (options.port, options.rest_api_port) == (8500, 8501)


def test_compose_export_command_is_accepted_by_the_export_cli() -> None:
    command = load_compose(COMPOSE_BASE)["services"]["export"]["command"]
    assert export_parse_args(command).models_dir == "/models"


def test_every_stage_a_final_image_copies_from_is_tagged_by_make(dockerfile: Parsed) -> None:
    """`make docker-images` prunes dangling images after the build; a stage that is neither tagged nor a parent
    of a tagged image is dangling, so its cache (the dependency venv: TensorFlow) would be rebuilt every time."""
    _, stages = dockerfile
    copied = {
        copy.split()[0].removeprefix("--from=")
        for name in FINAL_STAGES
        for copy in stages[name].all("COPY")
        if copy.startswith("--from=")
    }
    built = re.search(r"for target in ([\w -]+); do", (REPO_ROOT / "docker" / "compose.mk").read_text())
    assert built, "docker/compose.mk builds the images in a `for target in ...; do` loop"
    missing = copied - set(built[1].split())
    assert copied and not missing, f"docker/compose.mk must tag these stages too: {sorted(missing)}"


def test_every_copied_path_exists_and_reaches_the_build_context(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    for stage in stages.values():
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            sources = [s for s in copy.split()[:-1] if not s.startswith("--")]
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
                assert dockerignore_includes(source), f"COPY {source}: excluded by .dockerignore"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "models/fashion/1/saved_model.pb",
        ".env",
        ".run/admin-token",
        "gateway/__pycache__/app.cpython-311.pyc",
        "tests/conftest.py",
        "bench/results/a.json",
    ],
)
def test_dockerignore_keeps_the_context_small_and_secret_free(path: str) -> None:
    assert not dockerignore_includes(path)


def _extra_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra in ("tf", "export", "modelserver", "gateway"):
        wanted += project["optional-dependencies"][extra]
    return [Requirement(r) for r in wanted if not r.startswith("tfserve-stack")]


def test_constraints_pin_every_image_dependency_within_pyproject() -> None:
    pins = {}
    for line in (REPO_ROOT / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for requirement in _extra_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{requirement.name} has no exact pin in docker/constraints.txt (run `make docker-constraints`)"
        )
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"docker/constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )
