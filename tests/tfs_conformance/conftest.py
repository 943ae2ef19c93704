"""Fixtures for the port of TF Serving's integration suite (module-scoped: servers are shared as the original
shares them across its test class).

- ``pool``: ``ServerPool`` - ``RunServer`` of the original; every server it started stops at module end.
- ``temp_dir``: the module's scratch folder (``tf.test.get_temp_dir()`` / ``FLAGS.test_tmpdir``).
- ``good_model_config_file``: ``good_model_config.txt`` with its ``${TEST_HALF_PLUS_*_DIR}`` placeholders
  replaced by the vendored models (``__BuildModelConfigFile`` of the original).
- ``reload_config_files``: the two config files of the reload cases ({poll period: path}), serving
  half_plus_two as the original writes them before starting the server.
- ``saved_models_writer`` / ``saved_models``: the SavedModels the ``test_*_saved_model_save`` cases write,
  written once in a child process by ``write_models.py`` with the original's code (started early, waited for
  by ``saved_models``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.procs import REPO_ROOT
from tests.tfs_conformance.tfs_test_base import TESTDATA, ServerPool

HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu"
HALF_PLUS_THREE = TESTDATA / "saved_model_half_plus_three"
# Writing four small SavedModels includes importing TensorFlow; a hang guard, not a performance bound.
WRITE_MODELS_TIMEOUT = 600
BASE_CONFIG_PROTO = """
    model_config_list: {{
      config: {{
        name: "{name}",
        base_path: "{model_path}",
        model_platform: "tensorflow"
      }}
    }}
    """


@pytest.fixture(scope="module")
def temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tfs_conformance")


@pytest.fixture(scope="module")
def pool(temp_dir: Path) -> Iterator[ServerPool]:
    servers = ServerPool(temp_dir)
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def good_model_config_file(temp_dir: Path) -> Path:
    config = (TESTDATA / "good_model_config.txt").read_text()
    config = config.replace("${TEST_HALF_PLUS_TWO_DIR}", str(HALF_PLUS_TWO))
    config = config.replace("${TEST_HALF_PLUS_THREE_DIR}", str(HALF_PLUS_THREE))
    path = temp_dir / "good_model_config.conf"
    path.write_text(config)
    return path


@pytest.fixture(scope="module")
def reload_config_files(temp_dir: Path) -> dict[int, Path]:
    paths = {poll: temp_dir / f"model_config_poll_{poll}.txt" for poll in (1, 0)}
    for path in paths.values():
        path.write_text(BASE_CONFIG_PROTO.format(name="half_plus_two", model_path=HALF_PLUS_TWO))
    return paths


@pytest.fixture(scope="module")
def saved_models_writer(temp_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    out = temp_dir / "written_models"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        # The original's tf.keras is Keras 2 (tf-keras): Input(name='x') and the last layer 'y' name the
        # signature's input and output; Keras 3 would name them 'inputs' and 'output_0'.
        "TF_USE_LEGACY_KERAS": "1",
    }
    with open(temp_dir / "write_models.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.tfs_conformance.write_models", str(out)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def saved_models(saved_models_writer: tuple[subprocess.Popen[bytes], Path], temp_dir: Path) -> Path:
    proc, out = saved_models_writer
    returncode = proc.wait(WRITE_MODELS_TIMEOUT)
    log = (temp_dir / "write_models.log").read_text(errors="replace")
    assert returncode == 0, f"writing the SavedModels failed:\n{log[-4000:]}"
    return out
