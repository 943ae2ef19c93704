"""``python -m export``: exit codes and one-line messages for bad input, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "export", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unknown_model_lists_the_known_ones_without_a_traceback() -> None:
    result = _run("mnist")
    assert result.returncode == 2
    assert "unknown model 'mnist'" in result.stderr
    assert "fashion, housing, text" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_data_names_the_data_dir_it_looked_in(tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = _run("housing", "--data-dir", str(empty), "--models-dir", str(tmp_path / "models"))
    assert result.returncode == 3
    assert f"DATA_DIR={empty}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "models").glob("housing/[0-9]*"))


def test_existing_version_is_refused(
    model_repo: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(model_repo / "housing" / "1", tmp_path / "housing" / "1")
    code = main(["housing", "--version", "1", "--models-dir", str(tmp_path), "--data-dir", str(data_dir)])
    assert code == 4
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["0", "latest", "-2"])
def test_invalid_version_is_refused(
    tmp_path: Path, data_dir: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["housing", "--version", version, "--models-dir", str(tmp_path), "--data-dir", str(data_dir)])
    assert code == 2
    assert "use 'auto' or a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "housing").exists()


def test_all_refuses_a_fixed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["all", "--version", "2"]) == 1
    assert "--version auto" in capsys.readouterr().err


def test_cli_publishes_the_next_version(
    model_repo: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(model_repo / "housing" / "1", tmp_path / "housing" / "1")
    code = main(
        [
            "housing",
            "--epochs",
            "1",
            "--limit",
            "200",
            "--models-dir",
            str(tmp_path),
            "--data-dir",
            str(data_dir),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "rmse" in out and "baseline" in out
    assert sorted(p.name for p in (tmp_path / "housing").iterdir()) == ["1", "2"]


def test_tflite_quantize_is_a_flag_of_export_and_publish() -> None:
    from export.__main__ import _publish_parser, parse_args

    assert parse_args(["fashion", "--tflite-quantize"]).tflite_quantize
    assert not parse_args(["fashion"]).tflite_quantize
    assert _publish_parser().parse_args(["m.keras", "--name", "m", "--tflite-quantize"]).tflite_quantize
