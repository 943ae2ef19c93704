"""The modelserver never imports TensorFlow's Python layer (about 300 MB of RSS): it runs SavedModels through
the C API of the wheel's shared library and uses the vendored protos in ``tfs_protos``. Checked in a fresh
subprocess that imports every modelserver module, loads a SavedModel with warm-up records and answers a
Predict, then lists ``sys.modules``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from devtools import tiny_models
from devtools.procs import REPO_ROOT

_CHECK = """
import asyncio, importlib, pkgutil, sys
from pathlib import Path
import modelserver, modelserver.__main__
for info in pkgutil.walk_packages(modelserver.__path__, "modelserver."):
    importlib.import_module(info.name)
from modelserver.dataplane import DataPlane
from modelserver.runtime.loader import Loader
from modelserver.runtime.warmup import WarmupOptions
from modelserver.runtime.tensors import to_ndarray, to_tensor_proto
import numpy as np

servable = Loader("half", 1, Path(sys.argv[1]), WarmupOptions(num_request_iterations=2)).load()
out = servable.run("serving_default", {"x": to_ndarray(to_tensor_proto(np.array([1.0, 2.0], np.float32)))})
assert out["y"].tolist() == [2.5, 3.0], out
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_serving", "keras"))
print(heavy)
sys.exit(1 if heavy else 0)
"""


def test_modelserver_never_imports_tensorflow(tiny: dict[str, Path], tmp_path: Path) -> None:
    version = shutil.copytree(tiny["half_plus_two"], tmp_path / "1")
    tiny_models.write_warmup(version, [tiny_models.predict_log({"x": [1.0, 2.0]})] * 2)
    result = subprocess.run(
        [sys.executable, "-c", _CHECK, str(version)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.strip() == "[]"
