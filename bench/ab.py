"""``python -m bench.ab [--a-workers 1] [--b-workers 2] [--a-flags ...] [--b-flags ...] [--a-env K=V ...]
[--a-tree DIR] [--floor [--sync-floor N]] [--protocols grpc,rest] [--name workers] [--rounds 4] [--concurrency 64]
[--duration 6]``

An interleaved A/B of the model server's ``--num_workers`` (or of any other flags, ``--a-flags``/``--b-flags``,
e.g. ``--a-flags=--enable_drift_monitor=false --b-workers 1 --name drift``; of environment variables, ``--a-env``/``--b-env``;
or of two source trees, ``--a-tree``/``--b-tree``, e.g. a ``git archive`` of the base commit): both servers
(fashion, batching on as the bench's main matrix, or ``--no-batching``) are up at once, and each round runs
gRPC Predict (h2load) then REST predict (wrk) at one concurrency against A and B, alternating which goes
first, so drift in the machine's load hits both alike. ``--floor`` also drives the grpc.aio canned-reply
floor each round (each side's share of it), ``--sync-floor N`` grpcio's synchronous server's floor too.
Prints every point, the B/A ratio per round and the load average, and writes
``<results-dir>/ab-<name>-<date>.json``. gRPC answers are checked against the servers' request counters,
as in the modelserver scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.errors import BenchError
from bench.loadgen import grpc_load, http_load, require_tools
from bench.payloads import PREDICT_METHOD, build_payloads
from bench.repo import prepare_repo, write_models_config
from bench.scenarios.modelserver import grpc_point
from bench.servers import start_floor, start_modelserver
from bench.settings import BenchSettings

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    parser.add_argument("--a-workers", type=int, default=1)
    parser.add_argument("--b-workers", type=int, default=2)
    parser.add_argument("--a-flags", default="", help="extra modelserver flags of A (space-separated)")
    parser.add_argument("--b-flags", default="", help="extra modelserver flags of B (space-separated)")
    parser.add_argument(
        "--a-env", default="", help="extra environment of A's server (KEY=VALUE, space-separated)"
    )
    parser.add_argument("--b-env", default="", help="extra environment of B's server")
    parser.add_argument(
        "--a-tree", type=Path, help="run A's server from this source tree (e.g. a git archive)"
    )
    parser.add_argument("--b-tree", type=Path, help="run B's server from this source tree")
    parser.add_argument("--protocols", default="grpc,rest", help="which loads each round runs")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also drive the grpc.aio canned-reply floor each round (ratios to it)",
    )
    parser.add_argument(
        "--sync-floor",
        type=int,
        default=0,
        help="also drive grpcio's synchronous server's canned-reply floor with this many threads (with --floor)",
    )
    parser.add_argument("--name", default="workers", help="results file: ab-<name>-<date>.json")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per point")
    parser.add_argument("--no-batching", action="store_true", help="both servers without --enable_batching")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--results-dir", type=Path, default=Path("bench/results"))
    return parser.parse_args(argv)


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    sides = {"A": args.a_workers, "B": args.b_workers}
    flags = {"A": tuple(args.a_flags.split()), "B": tuple(args.b_flags.split())}
    trees = {"A": args.a_tree, "B": args.b_tree}
    envs = {"A": args.a_env, "B": args.b_env}
    protocols = tuple(p for p in ("grpc", "rest") if p in args.protocols.split(","))
    config = ctx.work / "fashion.config"
    servers = {
        side: start_modelserver(
            ctx,
            f"modelserver-{side}-{n}w",
            config,
            batching=not args.no_batching,
            wait_for=("fashion",),
            workers=n,
            extra_flags=flags[side],
            tree=trees[side],
            extra_env=dict(item.split("=", 1) for item in envs[side].split()),
        )
        for side, n in sides.items()
    }
    floor = start_floor(ctx) if args.floor else None
    sync_floor = start_floor(ctx, args.sync_floor) if args.floor and args.sync_floor else None
    rounds: list[dict[str, Any]] = []
    try:
        for side, server in servers.items():
            ctx.say(f"{side}: {sides[side]} worker(s), RSS {server.rss_bytes() / 2**20:.0f} MiB")
        c = args.concurrency
        for index in range(args.rounds):
            order = ["A", "B"] if index % 2 == 0 else ["B", "A"]
            row: dict[str, Any] = {"order": "".join(order), "load_average": _load_average()}
            for proto in protocols:
                for side in order:
                    server = servers[side]
                    key = f"ab.{proto}.{side}.r{index}"
                    if proto == "grpc":
                        result = grpc_point(ctx, server, key, ctx.payloads.grpc_fashion, c, args.duration)
                    else:
                        url = f"http://127.0.0.1:{server.ports['rest']}/v1/models/fashion:predict"
                        result = ctx.point(
                            key,
                            server,
                            lambda url=url: http_load(
                                url,
                                ctx.payloads.rest_fashion,
                                "application/json",
                                concurrency=c,
                                duration_s=args.duration,
                                timeout_s=ctx.settings.http_timeout_s,
                                warmup_s=ctx.settings.warmup_s,
                            ),
                        )
                    row[f"{proto}.{side}"] = round(result.rps, 1)
                    row[f"{proto}.{side}.errors"] = result.errors
                    row[f"{proto}.{side}.server_cores"] = round(result.server_cores or 0.0, 2)
                    # CPU per request: steadier than req/s on a shared machine (what the server spends, not
                    # what it was given)
                    row[f"{proto}.{side}.cpu_us"] = round(
                        (result.server_cores or 0.0) / max(result.rps, 1e-9) * 1e6
                    )
                row[f"{proto}.ratio"] = round(row[f"{proto}.B"] / max(row[f"{proto}.A"], 1e-9), 3)
                row[f"{proto}.cpu_ratio"] = round(
                    row[f"{proto}.B.cpu_us"] / max(row[f"{proto}.A.cpu_us"], 1), 3
                )
                if proto == "grpc" and floor is not None:
                    for label, server in (("floor", floor), ("floor_sync", sync_floor)):
                        if server is None:
                            continue
                        port = server.ports["grpc"]
                        point = ctx.point(
                            f"ab.{label}.r{index}",
                            server,
                            lambda port=port: grpc_load(
                                port,
                                PREDICT_METHOD,
                                ctx.payloads.grpc_fashion,
                                concurrency=c,
                                duration_s=args.duration,
                                warmup_s=ctx.settings.warmup_s,
                            ),
                        )
                        row[f"grpc.{label}"] = round(point.rps, 1)
                        row[f"grpc.{label}.server_cores"] = round(point.server_cores or 0.0, 2)
                    for side in order:
                        row[f"grpc.{side}/floor"] = round(
                            row[f"grpc.{side}"] / max(row["grpc.floor"], 1e-9), 3
                        )
                    if sync_floor is not None:
                        row["grpc.floor_sync/floor"] = round(
                            row["grpc.floor_sync"] / max(row["grpc.floor"], 1e-9), 3
                        )
            ratios = ", ".join(
                f"{proto} B/A {row[f'{proto}.ratio']:.2f} (CPU per request {row[f'{proto}.cpu_ratio']:.2f})"
                for proto in protocols
            )
            ctx.say(f"round {index} ({row['order']}, load {row['load_average']}): {ratios}")
            rounds.append(row)
        rss = {side: server.rss_bytes() for side, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
        for extra in (floor, sync_floor):
            if extra is not None:
                extra.stop()
    summary = {
        f"{proto}.{ratio}_{stat.__name__}": round(stat(r[f"{proto}.{ratio}"] for r in rounds), 3)
        for proto in protocols
        for ratio in ("ratio", "cpu_ratio")
        for stat in (min, max, statistics.mean, statistics.median)
    }
    if floor is not None:
        for side in sides:
            summary[f"grpc.{side}/floor_mean"] = round(
                statistics.mean(r[f"grpc.{side}/floor"] for r in rounds), 3
            )
    return {
        "workers": sides,
        "trees": {side: str(tree) for side, tree in trees.items() if tree is not None},
        "flags": {side: " ".join(f) for side, f in flags.items()},
        "env": envs,
        "batching": not args.no_batching,
        "concurrency": args.concurrency,
        "rounds": rounds,
        "rss_bytes": rss,
        **summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tfserve-ab-"))
    try:
        require_tools()
        settings = BenchSettings(duration_s=args.duration, profile_s=0)
        data_dir = next(
            (
                Path(c)
                for c in (settings.data_dir, REPO_ROOT.parent / "shared" / "data")
                if c and (Path(c) / "fashion-mnist").is_dir()
            ),
            None,
        )
        if data_dir is None:
            raise BenchError("the datasets were not found: set DATA_DIR to the folder holding fashion-mnist/")
        models = args.models_dir if args.models_dir.is_absolute() else REPO_ROOT / args.models_dir
        versions = prepare_repo(models, work / "models", ("fashion",))
        if "fashion" not in versions:
            raise BenchError(f"no published fashion model under {models}: run `make export` first")
        write_models_config(work / "fashion.config", work / "models", ["fashion"])
        payloads = build_payloads(data_dir, work / "bodies")
        ctx = Context(settings, REPO_ROOT, work, work / "models", versions, payloads)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        ctx.say(f"load average at start: {_load_average()} ({os.cpu_count()} cores)")
        result = {"started": started, "load_average_at_start": _load_average(), **run(ctx, args)}
        result["load_average_at_end"] = _load_average()
        ctx.say(f"load average at end: {result['load_average_at_end']}")
        for proto in ("grpc", "rest"):
            if f"{proto}.ratio_min" not in result:
                continue
            ctx.say(
                f"{proto} c{args.concurrency} B/A: min {result[f'{proto}.ratio_min']:.2f}, "
                f"mean {result[f'{proto}.ratio_mean']:.2f}, median {result[f'{proto}.ratio_median']:.2f}, "
                f"max {result[f'{proto}.ratio_max']:.2f}; CPU per request B/A mean "
                f"{result[f'{proto}.cpu_ratio_mean']:.2f}, median {result[f'{proto}.cpu_ratio_median']:.2f}"
            )
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"ab-{args.name}-{started[:10]}.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        ctx.say(f"wrote {out}")
    except BenchError as exc:
        print(f"bench.ab: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
