"""Scenario: the same fashion model served as a SavedModel and as TF Lite (``--prefer_tflite_model``), gRPC
Predict at the lowest and highest concurrency, latency, throughput and the server's RSS, in one run.

The TF Lite file is made from the bench's copy of the published version by ``export.tflite.convert_published``
(in a child process: the bench never imports TensorFlow) when the version has none; a model that does not
convert is reported as skipped with the converter's reason. The int8 dynamic-range variant
(``model.int8.tflite``, ``--tflite-quantize``) is a third row, ``tflite_int8``: served the way a user opts in to
it, as a version whose ``model.tflite`` is the int8 file; made like the float one when the version has none,
and left out (its reason in the results) when it falls outside its bound.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

from bench.errors import BenchError
from bench.repo import write_models_config
from bench.scenarios.modelserver import grpc_point, verify_grpc
from bench.servers import start_modelserver

__all__ = ["run"]

_CONVERT = (
    "import json, sys; from pathlib import Path; from export.tflite import convert_published; "
    "print(json.dumps(convert_published(Path(sys.argv[1]), quantize=True)))"
)
_INT8 = "model.int8.tflite"  # export.tflite.INT8_FILE (the bench never imports export)


def run(ctx: Any) -> None:
    if "fashion" not in ctx.versions:
        raise BenchError("no published fashion version")
    root = ctx.work / "tflite_repo"
    version = root / "fashion" / "1"
    if not version.exists():
        shutil.copytree(ctx.model_path("fashion"), version, symlinks=True)
    if not (version / "model.tflite").exists() or not (version / _INT8).exists():
        done = subprocess.run(
            [sys.executable, "-c", _CONVERT, str(version)],
            capture_output=True,
            text=True,
            cwd=ctx.repo_root,
            timeout=600,
        )
        if done.returncode != 0:
            raise BenchError(f"converting fashion to TF Lite failed: {done.stderr.strip().splitlines()[-1:]}")
        section = json.loads(done.stdout.strip().splitlines()[-1])
        ctx.results["tflite_conversion"] = section
        if not section["file"]:
            raise BenchError(f"fashion does not convert to TF Lite: {section['reason']}")
    runs = [("saved_model", root, ()), ("tflite", root, ("--prefer_tflite_model=true",))]
    if (version / _INT8).exists():
        int8_root = ctx.work / "tflite_int8_repo"
        int8_version = int8_root / "fashion" / "1"
        if not int8_version.exists():
            shutil.copytree(version, int8_version, symlinks=True)
            shutil.copyfile(version / _INT8, int8_version / "model.tflite")
        runs.append(("tflite_int8", int8_root, ("--prefer_tflite_model=true",)))
    s = ctx.settings
    body = ctx.payloads.grpc_fashion
    for label, repo, flags in runs:
        config = write_models_config(ctx.work / f"{label}.config", repo, ["fashion"])
        with start_modelserver(
            ctx, f"modelserver-{label}", config, batching=False, wait_for=("fashion",), extra_flags=flags
        ) as server:
            problem = verify_grpc(server.ports["grpc"], body.read_bytes(), "probabilities")
            ctx.results.setdefault("verified", {})[f"grpc.{label}"] = problem or "ok"
            for c in (min(s.concurrencies), max(s.concurrencies)):
                grpc_point(ctx, server, f"grpc.{label}.c{c}", body, c)
            ctx.measure_server(f"modelserver ({label}, fashion)", server)
