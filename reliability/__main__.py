"""``python -m reliability``: run the reliability and security suite against real processes on loopback and
write ``reliability/results/{results.json,README.md}``. Exit status 1 when any scenario fails.

    python -m reliability                       # everything, full scale (make reliability)
    python -m reliability --only faults,soak    # some scenarios
    python -m reliability --quick               # small scale (smoke)
    python -m reliability --models DIR          # an existing repository with models.config (absolute paths)

Without ``--models`` the three models are exported once by ``export/`` (small slices, one epoch) from
``$DATA_DIR`` into a cache folder and reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from reliability.report import headline, write_results
from reliability.suite import FULL, QUICK, SCENARIOS, run_suite, workdir

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "tfserve-reliability-models"


def _models(argument: str | None) -> Path:
    if argument:
        path = Path(argument).resolve()
        if not (path / "models.config").is_file():
            raise SystemExit(f"--models {path}: no models.config there (python -m devtools.exported DIR)")
        return path
    if (CACHE / "models.config").is_file():
        return CACHE
    data = os.environ.get("DATA_DIR") or str(REPO_ROOT.parent / "shared" / "data")
    if not Path(data, "fashion-mnist").is_dir():
        raise SystemExit(f"DATA_DIR={data!r} holds no fashion-mnist/: set DATA_DIR to the shared datasets")
    from devtools.exported import build_model_repo  # TensorFlow loads here

    print(f"== exporting fashion, text, housing into {CACHE} (once; reused by later runs)", flush=True)
    staging = Path(tempfile.mkdtemp(prefix=".tfserve-reliability-models-", dir=CACHE.parent))
    build_model_repo(staging, Path(data))
    if CACHE.exists():  # another run finished first
        shutil.rmtree(staging)
    else:
        os.replace(staging, CACHE)
    from devtools.exported import models_config

    (CACHE / "models.config").write_text(models_config(CACHE), encoding="utf-8")
    CACHE.chmod(0o755)
    return CACHE


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--quick", action="store_true", help="small scale (a smoke run, not the figures)")
    parser.add_argument("--models", help="an existing model repository with models.config")
    parser.add_argument("--results", default=str(REPO_ROOT / "reliability" / "results"), help="output folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs of every process)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    started = time.monotonic()
    repo = _models(args.models)
    work = workdir()
    print(f"== work folder {work} (process logs)", flush=True)
    try:
        outcomes = run_suite(
            repo, work, QUICK if args.quick else FULL, only, log=lambda m: print(m, flush=True)
        )
    finally:
        if not args.keep:
            for path in work.rglob("*"):  # the permission cases may leave folders unreadable
                if path.is_dir():
                    path.chmod(0o755)
            shutil.rmtree(work, ignore_errors=True)
    command = (
        "python -m reliability"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only != ",".join(SCENARIOS) else "")
    )
    meta = {
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.monotonic() - started, 1),
        "commit": _commit(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "command": command,
        "scale": (QUICK if args.quick else FULL).__dict__,
    }
    write_results(Path(args.results), outcomes, meta, merge=set(only) != set(SCENARIOS))
    print(
        f"\n== {sum(o.passed for o in outcomes)}/{len(outcomes)} scenarios passed in {meta['seconds']:.0f} s"
    )
    for outcome in outcomes:
        print(f"   {'pass' if outcome.passed else 'FAIL'}  {outcome.title}: {headline(outcome)}")
    print(f"== results: {args.results}/README.md")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
