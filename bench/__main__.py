"""``python -m bench [--smoke] [--only a,b] [--models-dir models] [--results-dir bench/results]``

Runs the scenarios of issue 8 in one go and writes ``<results-dir>/<date>.json``, ``latest.md`` and
``latest.png``. Errors that stop the run print one line saying what to fix (exit 1); a scenario that cannot
run is recorded as skipped, with its reason, and the rest still runs. This is the one place errors become
exit codes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.errors import BenchError
from bench.loadgen import require_tools
from bench.payloads import build_payloads
from bench.repo import prepare_repo, write_models_config
from bench.settings import SCENARIOS, BenchSettings

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny scale: checks the harness end to end")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--models-dir", type=Path, default=None, help="published models (default: models)")
    parser.add_argument("--results-dir", type=Path, default=None, help="default: bench/results")
    parser.add_argument("--keep-work", action="store_true", help="keep the work dir (logs, profiles)")
    parser.add_argument(
        "--modelserver-workers",
        type=int,
        default=None,
        help="--num_workers of the batching-on model server (default 1; BENCH_MODELSERVER_WORKERS)",
    )
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace) -> BenchSettings:
    overrides: dict[str, Any] = {}
    if args.models_dir is not None:
        overrides["models_dir"] = args.models_dir
    if args.results_dir is not None:
        overrides["results_dir"] = args.results_dir
    if args.modelserver_workers is not None:
        overrides["modelserver_workers"] = args.modelserver_workers
    if args.only:
        chosen = tuple(x.strip() for x in args.only.split(",") if x.strip())
        unknown = sorted(set(chosen) - set(SCENARIOS))
        if unknown:
            raise BenchError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
        overrides["only"] = chosen
    return BenchSettings.smoke_scale(**overrides) if args.smoke else BenchSettings(**overrides)


def find_data_dir(settings: BenchSettings) -> Path:
    for candidate in (settings.data_dir, REPO_ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "fashion-mnist").is_dir():
            return Path(candidate).resolve()
    raise BenchError("the datasets were not found: set DATA_DIR to the folder holding fashion-mnist/")


def environment() -> dict[str, Any]:
    import numpy

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def run_scenarios(ctx: Context) -> None:
    from bench.scenarios import (
        baselines,
        crosscheck,
        floor,
        gateway,
        hotswap,
        inprocess,
        memory,
        mobilenet,
        modelserver,
        tflite,
    )
    from bench.servers import start_modelserver

    only = set(ctx.settings.only)

    def guarded(name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except BenchError as exc:
            ctx.skip(name, str(exc).splitlines()[0])
        except Exception as exc:  # a harness bug must not lose the other scenarios' figures
            traceback.print_exc()
            ctx.skip(name, f"harness error {type(exc).__name__}: {exc}")

    if "inprocess" in only:
        guarded("inprocess", lambda: inprocess.run(ctx))
    if "floor" in only:
        guarded("floor", lambda: floor.run(ctx))
    if "naive" in only:
        guarded("naive", lambda: baselines.run_naive(ctx))
    for peer in baselines.PEERS:
        if peer in only:
            guarded(peer, partial(baselines.run_peer, ctx, peer))
    if only & {"modelserver", "memory"}:

        def batching_off() -> None:
            with memory.start_empty(ctx) as server:
                memory.add_models(ctx, server, measure="memory" in only)
                if "modelserver" in only:
                    modelserver.run_matrix(ctx, server, "batching_off")

        guarded("modelserver batching off", batching_off)
    if only & {"modelserver", "gateway", "hotswap"}:

        def batching_on() -> None:
            wait = tuple(n for n in ("fashion", "text", "housing") if n in ctx.versions)
            workers = ctx.settings.modelserver_workers
            ctx.results["modelserver_workers"] = workers
            with start_modelserver(
                ctx,
                "modelserver-batching-on",
                ctx.work / "all.config",
                batching=True,
                wait_for=wait,
                workers=workers,
            ) as server:
                rest = server.ports["rest"]
                baselines.record_answer(
                    ctx, "modelserver", f"http://127.0.0.1:{rest}/v1/models/fashion:predict"
                )
                if "modelserver" in only:
                    guarded(
                        "modelserver batching on", lambda: modelserver.run_matrix(ctx, server, "batching_on")
                    )
                if "gateway" in only:
                    guarded("gateway", lambda: gateway.run(ctx, server))
                if "hotswap" in only:
                    guarded("hotswap", lambda: hotswap.run(ctx, server))
                ctx.measure_server("modelserver (3 models, batching on)", server)
                ctx.results["modelserver_memory"] = memory.breakdown(server.pid)

        guarded("modelserver batching on", batching_on)
    if "modelserver" in only:
        guarded("modelserver TF Serving scheduling", lambda: modelserver.run_tf_scheduling(ctx))
    if "tflite" in only:
        guarded("tflite", lambda: tflite.run(ctx))
    if "mobilenet" in only:
        guarded("mobilenet", lambda: mobilenet.run(ctx))
    guarded("answers", lambda: crosscheck.run(ctx))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path | None = None
    try:
        settings = build_settings(args)
        require_tools()
        data_dir = find_data_dir(settings)
        models_dir = (
            settings.models_dir if settings.models_dir.is_absolute() else REPO_ROOT / settings.models_dir
        )
        work = Path(tempfile.mkdtemp(prefix="tfserve-bench-"))
        repo = work / "models"
        versions = prepare_repo(models_dir, repo, ("fashion", "text", "housing"))
        if "fashion" not in versions:
            raise BenchError(f"no published fashion model under {models_dir}: run `make export` first")
        write_models_config(work / "fashion.config", repo, ["fashion"])
        write_models_config(work / "all.config", repo, list(versions))
        payloads = build_payloads(data_dir, work / "bodies")
        ctx = Context(settings, REPO_ROOT, work, repo, versions, payloads)
        ctx.results.update(
            {
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "scale": "smoke" if settings.smoke else "full",
                "settings": settings.model_dump(mode="json"),
                "environment": environment(),
                "models": {
                    name: {"source": str(models_dir / name / str(v)), "version": v}
                    for name, v in versions.items()
                },
            }
        )
        ctx.say(f"work dir {work}; models {versions}; scale {ctx.results['scale']}")
        started = time.monotonic()
        run_scenarios(ctx)
        ctx.results["wall_seconds"] = time.monotonic() - started
        ctx.results["environment"]["load_average_at_end"] = os.getloadavg()
        from bench.report import write_report

        written = write_report(ctx)
        for path in written:
            ctx.say(f"wrote {path}")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    finally:
        if work is not None and not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        elif work is not None:
            print(f"bench: work dir kept at {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
