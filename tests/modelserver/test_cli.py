"""modelserver.process.cli: tensorflow_model_server's flag names, formats and defaults; bad flags fail at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelserver.errors import ConfigError
from modelserver.process.cli import parse_flags
from modelserver.process.options import usable_cores

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_tensorflow_model_server() -> None:
    options = parse_flags(["--model_base_path=/models/half"])
    assert (options.port, options.rest_api_port, options.model_name) == (8500, 0, "default")
    assert options.file_system_poll_wait_seconds == 1
    assert options.model_config_file_poll_wait_seconds == 0
    assert options.enable_model_warmup is True
    assert options.enable_batching is False
    assert options.enable_signature_method_name_check is False
    assert options.allow_version_labels_for_unavailable_models is False
    assert options.enable_grpc_healthcheck_service is False


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--enable_batching", True),
        ("--enable_batching=true", True),
        ("--enable_batching=True", True),
        ("--enable_batching=1", True),
        ("--enable_batching=false", False),
        ("--enable_batching=0", False),
    ],
)
def test_boolean_flag_forms(flag: str, value: bool) -> None:
    assert parse_flags(["--model_base_path=/m", flag]).enable_batching is value


def test_values_and_ignored_tuning_flags() -> None:
    options = parse_flags(
        ["--port=9000", "--rest_api_port=9001", "--model_config_file=/c", "--rest_api_num_threads=8",
         "--file_system_poll_wait_seconds=0", "--enable_model_warmup=false"]
    )  # fmt: skip
    assert (options.port, options.rest_api_port, options.model_config_file) == (9000, 9001, "/c")
    assert options.file_system_poll_wait_seconds == 0
    assert options.enable_model_warmup is False


def test_num_workers_default_one_and_zero_means_one_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_flags(["--model_base_path=/m"]).workers == 1  # today's single process, no supervisor
    assert parse_flags(["--model_base_path=/m", "--num_workers=3"]).workers == 3
    assert parse_flags(["--model_base_path=/m", "--num_workers=0"]).workers == usable_cores()
    monkeypatch.setenv("MODELSERVER_NUM_WORKERS", "2")
    assert parse_flags(["--model_base_path=/m"]).workers == 2


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("", None)],
)
def test_usable_cores_follows_the_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(str(path)) == (affinity if expected is None else min(affinity, expected))
    assert usable_cores(str(tmp_path / "absent")) == affinity


def test_process_with_workers_fails_on_malformed_config_file_before_any_worker(tmp_path: Path) -> None:
    config = tmp_path / "bad.config"
    config.write_text("improperly formatted file")
    result = _run(f"--model_config_file={config}", "--num_workers=2", "--port=0", "--rest_api_port=0")
    assert result.returncode == 2  # --port=0 needs --grpc_socket_path, which workers cannot share
    result = _run(f"--model_config_file={config}", "--num_workers=2")
    assert result.returncode == 1
    assert "not a valid text proto" in result.stderr and "Traceback" not in result.stderr
    assert "started 2 workers" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "env", "threads"),
    [
        ([], {}, (0, 0)),  # TF Serving's defaults: serially in the manager thread
        (["--num_load_threads=2"], {}, (2, 0)),
        (["--num_load_threads=0", "--num_unload_threads=3"], {}, (0, 3)),
        ([], {"MODELSERVER_NUM_LOAD_THREADS": "4", "MODELSERVER_NUM_UNLOAD_THREADS": "1"}, (4, 1)),
        (["--num_load_threads=1"], {"MODELSERVER_NUM_LOAD_THREADS": "4"}, (1, 0)),  # the flag wins
    ],
)
def test_load_and_unload_thread_flags(
    argv: list[str], env: dict[str, str], threads: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    options = parse_flags(["--model_base_path=/m", *argv])
    assert (options.num_load_threads, options.num_unload_threads) == threads


@pytest.mark.parametrize("policy", ["availability_preserving", "resource_preserving"])
def test_aspired_version_policy_flag(policy: str) -> None:
    assert parse_flags(["--model_base_path=/m"]).aspired_version_policy == "availability_preserving"
    options = parse_flags(["--model_base_path=/m", f"--aspired_version_policy={policy}"])
    assert options.aspired_version_policy == policy


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--model_base_path=/m", "--no_such_flag=1"], "unknown flag --no_such_flag"),
        (["--model_base_path=/m", "--port=abc"], "--port='abc'"),
        (["--model_base_path=/m", "--port=70000"], "--port"),
        (["--model_base_path=/m", "--enable_batching=maybe"], "expected true or false"),
        (["--model_base_path=/m", "--port"], "needs a value"),
        (["--model_base_path=/m", "stray"], "unexpected argument 'stray'"),
        ([], "Both server_options.model_base_path and server_options.model_config_file are empty"),
        (["--model_base_path=/m", "--batching_parameters_file=/b"], "requires --enable_batching"),
        (["--model_base_path=/m", "--port=8500", "--rest_api_port=8500"], "must be different"),
        (["--model_base_path=/m", "--platform_config_file=/p"], "not supported"),
        (["--model_base_path=/m", "--aspired_version_policy=fastest"], "--aspired_version_policy='fastest'"),
        (["--model_base_path=/m", "--num_workers=-1"], "--num_workers='-1'"),
        (["--model_base_path=/m", "--num_load_threads=-1"], "--num_load_threads='-1'"),
        (["--model_base_path=/m", "--num_unload_threads=-3"], "--num_unload_threads='-3'"),
        (["--model_base_path=/m", "--num_load_threads=two"], "--num_load_threads='two'"),
        (["--model_base_path=/m", "--num_load_threads"], "needs a value"),
        (["--model_base_path=/m", "--num_workers=2", "--grpc_socket_path=/s"], "--grpc_socket_path cannot"),
    ],
)
def test_bad_flags_name_the_problem(argv: list[str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace("'", ".")) as info:
        parse_flags(argv)
    assert problem.split("=")[0].strip("'") in str(info.value)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelserver", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_process_rejects_unknown_flag_and_prints_version() -> None:
    bad = _run("--model_base_path=/m", "--bogus=1")
    assert bad.returncode == 2
    assert "unknown flag --bogus" in bad.stderr
    assert "Traceback" not in bad.stderr
    version = _run("--version")
    assert version.returncode == 0 and "TensorFlow ModelServer" in version.stdout


def test_process_fails_on_malformed_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.config"
    config.write_text("improperly formatted file")
    result = _run(f"--model_config_file={config}", "--port=0", "--grpc_socket_path=" + str(tmp_path / "s"))
    assert result.returncode == 1
    assert "not a valid text proto" in result.stderr and "Traceback" not in result.stderr
