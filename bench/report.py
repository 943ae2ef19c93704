"""The run's outputs, each written atomically: ``<date>.json`` (everything measured), ``latest.md`` (goals
met / missed, every load point with its ratios, hot swap, memory, profiles) and ``latest.png`` (matplotlib
Agg: throughput, latency at the lowest concurrency, the hot-swap timeline)."""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.findings import FINDINGS
from bench.goals import PEERS, Goal, evaluate
from bench.monitoring_cost import monitoring_cost_section
from bench.scenarios.inprocess import INTRA_OP_RULE, rule_entries
from bench.scenarios.inprocess import best as inprocess_best
from bench.settings import SCENARIOS
from devtools.files import write_atomic

__all__ = [
    "MOBILENET",
    "goals_table",
    "mobilenet_png",
    "mobilenet_section",
    "render_markdown",
    "render_mobilenet_plot",
    "render_plot",
    "update_readme",
    "write_report",
]

MOBILENET = "mobilenet."  # the real-size model's points: mobilenet.<path>.c<N> (bench/scenarios/mobilenet.py)
_MOBILENET_PATHS = {
    "grpc": "TF Serving gRPC Predict",
    "oip": "OIP REST, binary tensor",
    "rest": "TF Serving REST JSON",
    "gateway": "gateway JPEG upload",
    **{peer: f"{label} (REST JSON)" for peer, label in PEERS.items()},
}


def mobilenet_png(png_name: str) -> str:
    """``latest.png`` -> ``latest-mobilenet.png`` (beside the fashion picture)."""
    stem, dot, ext = png_name.rpartition(".")
    return f"{stem}-mobilenet{dot}{ext}" if dot else f"{png_name}-mobilenet"


def _mobilenet_points(results: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    series: dict[str, dict[int, dict[str, Any]]] = {}
    for key, p in results.get("points", {}).items():
        if key.startswith(MOBILENET):
            stem, c = _split(key.removeprefix(MOBILENET))
            series.setdefault(stem, {})[c] = p
    return series


def _batches(limit: dict[str, Any]) -> str:
    return ", ".join(
        f"batch {v['batch']} {v['images_per_s']:.1f} images/s ({v['ms_per_call']:.1f} ms/call)"
        for k, v in limit.items()
        if k.startswith("batch")
    )


def mobilenet_section(results: dict[str, Any], png_name: str, heading: str = "## ") -> list[str]:
    """The real-size model's table: every path at every concurrency against the in-process best batch of
    the same run; the server's memory; empty when the scenario did not run."""
    mobilenet = results.get("mobilenet")
    if not mobilenet:
        return []
    limit = mobilenet.get("inprocess", {})
    best = limit.get("best", {}).get("images_per_s")
    lines = [
        "",
        f"{heading}Real-size model: MobileNetV2 (224x224x3, 1000 classes, random weights)",
        "",
        f"![MobileNetV2 throughput per concurrency]({mobilenet_png(png_name)})",
        "",
        f"Model: {mobilenet.get('source', '?')}. In-process limit (the C++ session the model server runs, "
        "no serving), TensorFlow's default pools from 1 caller: "
        + _batches(limit)
        + (
            f"; the intra-op pool at 1 thread (what the model servers here run) from "
            f"{pooled['best']['callers']} callers: {_batches(pooled)}"
            if (pooled := limit.get(INTRA_OP_RULE))
            else ""
        )
        + ". `vs limit`: req/s over the best of these. The same picture (a Fashion-MNIST test image "
        "upscaled to 224x224 RGB) through every path.",
        "",
        "| path | conc. | req/s | p50 ms | p90 ms | p99 ms | errors | vs limit | server CPU | load-gen CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for stem, by_c in _mobilenet_points(results).items():
        for c in sorted(by_c):
            p = by_c[c]
            errors = f"{p['errors']}" + (f" of {p['requests']}" if p["errors"] else "")
            server = "-" if p.get("server_cores") is None else f"{p['server_cores']:.2f}"
            vs_limit = f"{p['rps'] / best:.2f}x" if best else "-"
            lines.append(
                f"| {_MOBILENET_PATHS.get(stem, stem)} | {c} | {p['rps']:.1f} | {_ms(p['p50_ms'])} | "
                f"{_ms(p['p90_ms'])} | {_ms(p['p99_ms'])} | {errors} | "
                f"{vs_limit} | {server} | "
                f"{p['loadgen_cores']:.2f} |"
            )
    rss, pss = results.get("rss_bytes", {}), results.get("pss_bytes", {})
    served = [name for name in rss if "mobilenet" in name]
    if served:
        lines += [""] + [
            f"{name}: RSS {_mib(rss[name])} MiB, PSS {_mib(pss.get(name))} MiB (whole process tree)."
            for name in served
        ]
    return lines


def render_mobilenet_plot(results: dict[str, Any], path: Path) -> bool:
    """req/s per concurrency of every MobileNetV2 path, the in-process limit as a line, and p50 per path;
    False (nothing written) when the scenario did not run."""
    series = _mobilenet_points(results)
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = results.get("mobilenet", {}).get("inprocess", {}).get("best", {})
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 5.5))
    for stem, by_c in series.items():
        cs = sorted(by_c)
        label = _MOBILENET_PATHS.get(stem, stem)
        style = ":" if stem in PEERS else "-"
        left.plot(cs, [by_c[c]["rps"] for c in cs], style, marker="o", label=label)
        right.plot(cs, [by_c[c]["p50_ms"] for c in cs], style, marker="o", label=label)
    if best.get("images_per_s"):
        left.axhline(
            best["images_per_s"], color="black", linestyle="--", label=f"in-process, batch {best['batch']}"
        )
    ticks = sorted({c for by_c in series.values() for c in by_c})
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(c) for c in ticks])
        ax.minorticks_off()
    left.set(xscale="log", xlabel="concurrency", ylabel="req/s (= images/s)", title="MobileNetV2: throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="p50 ms", title="MobileNetV2: p50")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    try:
        fig.savefig(png, dpi=90, format="png")
    finally:
        plt.close(fig)
    write_atomic(path, png.getvalue())
    return True


_LABELS = {
    "naive": "naive FastAPI + model.predict",
    "bentoml": "BentoML, adaptive batching",
    "ray": "Ray Serve, @serve.batch",
    "kserve": "KServe model server (v1)",
    "grpc.batching_off": "modelserver gRPC, batching off",
    "grpc.batching_on": "modelserver gRPC, batching on",
    "rest.batching_off": "modelserver REST, batching off",
    "rest.batching_on": "modelserver REST, batching on",
    "grpc.batching_tf": "modelserver gRPC, batching on, TF Serving scheduling",
    "rest.batching_tf": "modelserver REST, batching on, TF Serving scheduling",
    "gateway.upload": "gateway PNG upload (fashion)",
    "gateway.explain": "gateway PNG upload, :explain (fashion, 32 steps)",
    "gateway.text": "gateway text classify",
    "gateway.housing": "gateway housing regress",
    "grpc.text": "modelserver gRPC text",
    "grpc.housing": "modelserver gRPC housing",
    "hotswap": "gRPC under hot swap",
    "hotswap.control": "gRPC beside 1 s of SCHED_IDLE CPU in another process (hot swap control)",
    "floor.grpc": "transport floor: grpc.aio, canned reply",
    "floor.rest": "transport floor: uvicorn, canned reply",
}


def _split(key: str) -> tuple[str, int]:
    stem, _, c = key.rpartition(".c")
    return stem, int(c) if c.isdigit() else 0


def _ms(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _short(text: str, limit: int = 60) -> str:
    """A table cell: the start of ``text`` (the whole of it is listed under the failed checks)."""
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _peers_section(results: dict[str, Any]) -> list[str]:
    """latest.md's Peers section (nothing when no peer was measured)."""
    table = _peers_table(results)
    return ["", "## Peers", *table] if table else []


def _peers_table(results: dict[str, Any]) -> list[str]:
    """Ours beside every peer: the same body, the same wrk settings, the same run (each line preceded by
    a blank one where markdown needs it)."""
    points: dict[str, dict[str, Any]] = results.get("points", {})
    conc = results.get("settings", {}).get("concurrencies") or [1, 8, 64]
    top, low = max(conc), min(conc)
    measured = [key for key in PEERS if f"{key}.c{top}" in points]
    if not measured:
        return []
    ours = "modelserver (3 models, batching on)"
    rows = [("modelserver REST, batching on", "rest.batching_on", ours, "reference")]
    rows = rows if f"rest.batching_on.c{top}" in points else []
    verified = results.get("verified", {})
    versions = results.get("versions", {})
    rows += [
        (
            f"{PEERS[key]} {versions.get(key, '')}".strip(),
            key,
            key,
            _short(verified.get(f"{key} answer", "-")),
        )
        for key in measured
    ]
    pss, rss, startup = (results.get(k, {}) for k in ("pss_bytes", "rss_bytes", "startup_s"))
    lines = [
        "",
        'Every server gets the same `{"instances": [image]}` body (one real Fashion-MNIST test image) '
        "from the same wrk settings; its answer to it is checked against ours. Memory is PSS of the whole "
        "process tree after its heaviest load point (each shared page split between the processes sharing "
        "it; Ray runs many processes); start-up is from exec to its first ready answer. Ours serves three "
        "models, each peer one.",
        "",
        f"| server | c{top} req/s | c{low} p50 ms | c{low} p99 ms | PSS (MiB) | RSS (MiB) | start-up s "
        f"| load-gen CPU at c{top} | answer vs ours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, stem, key, check in rows:
        hi, lo = points.get(f"{stem}.c{top}", {}), points.get(f"{stem}.c{low}", {})
        lines.append(
            f"| {label} | {hi.get('rps', 0):.0f} | {_ms(lo.get('p50_ms'))} | {_ms(lo.get('p99_ms'))} "
            f"| {_mib(pss.get(key))} | {_mib(rss.get(key))} | {_ms(startup.get(key))} "
            f"| {hi.get('loadgen_cores', 0):.2f} | {check} |"
        )
    for key, found in results.get("exposed", {}).items():
        lines += [
            "",
            f"{PEERS.get(key, key)} listened beyond 127.0.0.1 on {len(found['listeners'])} sockets "
            f"({', '.join(found['listeners'])}): {found['why']}.",
        ]
    return lines


def render_markdown(
    results: dict[str, Any], goals: list[Goal], png_name: str, results_dir: Path | None = None
) -> str:
    """``latest.md``; ``results_dir`` adds the newest monitoring A/B files' figures (bench.monitoring_cost)."""
    points: dict[str, dict[str, Any]] = results.get("points", {})
    env = results.get("environment", {})
    inproc = results.get("inprocess", {})
    b32 = inprocess_best(inproc, 32).get("images_per_s")
    lines = [
        f"# Bench results ({results.get('scale', '?')} run, {results.get('started', '?')})",
        "",
        f"{env.get('cores', '?')} cores ({env.get('cpu', '?')}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in env.get('load_average_at_start', []))} (at the end "
        f"{', '.join(f'{x:.2f}' for x in env.get('load_average_at_end', []))}; the machine is shared); "
        "models: "
        + ", ".join(f"{k} v{v['version']}" for k, v in results.get("models", {}).items())
        + f"; wall time {results.get('wall_seconds', 0):.0f} s. Every figure that matters is a ratio "
        "against a baseline measured in this same run. Load: h2load (gRPC) and wrk (HTTP), 127.0.0.1 only.",
        "",
        f"![throughput, latency and hot swap]({png_name})",
        "",
        "## Goals (issues 8, 14 and 30)",
        "",
        *goals_table(goals),
    ]
    lines += [
        "",
        "## In-process limit (signature called directly)",
        "",
        "Two thread rules, each in its own process; the limit the goals use is the best of them (the most "
        "images/s; at batch 1 the least ms per call). The model servers of this run use the second "
        "(`--tensorflow_intra_op_parallelism=1`).",
        "",
        "| thread rule | batch | callers | images/s | ms per call | CPU ms per image |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    labels = {
        "default": "TensorFlow's default pools (ConcreteFunction)",
        INTRA_OP_RULE: "intra-op pool 1 thread (C++ session)",
    }
    for rule, entry in rule_entries(inproc):
        for key, value in entry.items():
            if key.startswith("batch"):
                cpu = value.get("cpu_ms_per_image")
                lines.append(
                    f"| {labels[rule]} | {value['batch']} | {value.get('callers', 1)} | {value['images_per_s']:.0f} | "
                    f"{value['ms_per_call']:.3f} | {'-' if cpu is None else f'{cpu:.3f}'} |"
                )
    execution = inproc.get("execution")
    if execution:
        lines += [
            "",
            "## Execution path: per-call cost (same process, alternating rounds)",
            "",
            "The TF Serving path the modelserver runs (C++ loader + `TF_SessionRun`, GIL released) "
            "against the TF2 Python path it ran before (`tf.saved_model.load` + ConcreteFunction).",
            "",
            "| batch | C++ session ms/call | ConcreteFunction ms/call | session / function |",
            "| --- | --- | --- | --- |",
        ]
        for key, ratio in execution["session_over_function"].items():
            lines.append(
                f"| {key.removeprefix('batch')} | {execution['session'][key]['ms_per_call']:.3f} "
                f"| {execution['function'][key]['ms_per_call']:.3f} | {ratio:.2f}x |"
            )
    lines += [
        "",
        "## Load points",
        "",
        "`vs naive`: throughput over the naive server's at the same concurrency; `vs in-proc`: over the "
        "in-process batch-32 images/s. CPU columns are cores used (CPU seconds / wall seconds). `transport "
        "floor` rows: the same bodies to grpc.aio / uvicorn answering a canned reply (no model, no parsing): "
        "the most any server of this model gets from that transport on this machine.",
        "",
        "| path | conc. | req/s | p50 ms | p90 ms | p99 ms | errors | vs naive | vs in-proc | server CPU "
        "| load-gen CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, p in points.items():
        stem, c = _split(key)
        if stem.startswith(MOBILENET):  # its own section, against its own limit
            continue
        naive = points.get(f"naive.c{c}", {}).get("rps")
        vs_naive = f"{p['rps'] / naive:.0f}x" if naive and not stem.startswith(("naive", "floor")) else "-"
        vs_inproc = f"{p['rps'] / b32:.2f}x" if b32 else "-"
        errors = f"{p['errors']}" + (f" of {p['requests']}" if p["errors"] else "")
        server = "-" if p.get("server_cores") is None else f"{p['server_cores']:.2f}"
        lines.append(
            f"| {_LABELS.get(stem, stem)} | {c} | {p['rps']:.0f} | {_ms(p['p50_ms'])} | {_ms(p['p90_ms'])} | "
            f"{_ms(p['p99_ms'])} | {errors} | {vs_naive} | {vs_inproc} | {server} | "
            f"{p['loadgen_cores']:.2f} |"
        )
    lines += _peers_section(results)
    lines += mobilenet_section(results, png_name)
    swap = results.get("hotswap")
    if swap:
        lines += [
            "",
            "## Hot swap under load",
            "",
            f"Version {swap['old_version']} -> {swap['new_version']} published "
            f"{results['settings']['hotswap_s'] / 3:.0f} s into {results['settings']['hotswap_s']:.0f} s of "
            f"gRPC load at concurrency 8; the new version was AVAILABLE after "
            f"{_ms(swap['available_after_s'])} s and the old one unloaded after "
            f"{_ms(swap['old_unloaded_after_s'])} s. "
            f"Failed requests: **{swap['failed']}** of {swap['requests']}.",
            "",
            "| phase | requests | p50 ms | p90 ms | p99 ms |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, ph in swap["phases"].items():
            lines.append(
                f"| {name} | {ph['requests']} | {_ms(ph['p50_ms'])} | {_ms(ph['p90_ms'])} | "
                f"{_ms(ph['p99_ms'])} |"
            )
        control = swap.get("control")
        if control:
            ph = control["phases"]
            lines += [
                "",
                f"Control, same load: instead of a publish, {control['cpu_s']:.0f} s of CPU in another process at "
                f"{control['policy']} (it runs only on a core no other thread wants): p99 before "
                f"{_ms(ph['before']['p99_ms'])} ms, during {_ms(ph['during']['p99_ms'])} ms "
                f"(**{ph['during']['p99_ms'] / ph['before']['p99_ms']:.2f}x**, {ph['during']['requests']} requests).",
            ]
    memory = results.get("memory")
    rss = results.get("rss_bytes", {})
    if memory or rss:
        lines += ["", "## Memory", ""]
    if memory:
        lines += [
            f"Model server with no model: {_mib(memory['baseline_rss'])} MiB RSS; models added one at a time "
            "through the config file.",
            "",
            "| model | RSS after (MiB) | growth (MiB) | loader estimate (MiB) | estimate error |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in memory["models"]:
            error = "-" if row["estimate_error"] is None else f"{row['estimate_error']:+.0%}"
            lines.append(
                f"| {row['model']} v{row['version']} | {_mib(row['rss_after'])} | {_mib(row['growth'])} "
                f"| {_mib(row['estimate'])} | {error} |"
            )
    if rss:
        pss = results.get("pss_bytes", {})
        lines += ["", "| process (whole tree) | PSS (MiB) | RSS (MiB) |", "| --- | --- | --- |"]
        lines += [f"| {name} | {_mib(pss.get(name))} | {_mib(value)} |" for name, value in rss.items()]
    split = results.get("modelserver_memory")
    if split:
        lines += [
            "",
            f"Model server (3 models, batching on), one process: RSS {_mib(split.get('rss'))} MiB = anonymous "
            f"{_mib(split.get('anonymous'))} MiB (heap, tensors, thread stacks: each worker's own) + file pages "
            f"{_mib(split.get('file'))} MiB (the part of TensorFlow's libraries serving touches; start-up's "
            f"pages are released, guard/pages.py; shared by every worker mapping them); PSS {_mib(split.get('pss'))} MiB (no other process of "
            "the bench maps TensorFlow's libraries).",
        ]
    if results_dir is not None:
        lines += monitoring_cost_section(results_dir)
    profiles = results.get("profiles", [])
    if profiles:
        lines += ["", "## Profiles (py-spy, under the heaviest load point)", ""]
        for prof in profiles:
            if prof.get("error"):
                lines.append(f"- **{prof['target']}**: no profile ({prof['error']})")
                continue
            own = ", ".join(f"`{n}` {s:.0%}" for n, s in prof["own"][:6])
            inclusive = ", ".join(f"`{n}` {s:.0%}" for n, s in prof["inclusive"][:6])
            lines.append(
                f"- **{prof['target']}** ({prof.get('busy', 0)} busy of {prof['samples']} samples). "
                f"Own time: {own}. Inclusive (outside the standard library): {inclusive}."
            )
    missed = [g for g in goals if g.status == "missed"]
    if missed:
        lines += ["", "## Findings on the missed goals", ""]
        for g in missed:
            lines.append(f"- **{g.text}** ({g.verdict()}): {FINDINGS.get(g.key, 'see the profiles above.')}")
    skipped = results.get("skipped", {})
    if skipped:
        lines += ["", "## Not measured in this run", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped.items()]
    wrong = {k: v for k, v in results.get("verified", {}).items() if v != "ok"}
    if wrong:
        lines += ["", "## Answers that failed the check", ""] + [f"- {k}: {v}" for k, v in wrong.items()]
    lines += [
        "",
        "Reproduce: `make bench` (about 6 minutes on 2 cores); `make bench-smoke` checks the harness in "
        "seconds. Raw figures: the JSON beside this file.",
        "",
    ]
    return "\n".join(lines)


def _plot_memory(ax: Any, results: dict[str, Any]) -> None:
    """PSS of each server's process tree, with its start-up time written on the bar."""
    pss: dict[str, int] = results.get("pss_bytes", {})
    startup: dict[str, float] = results.get("startup_s", {})
    names = list(pss)
    if not names:
        ax.set_title("Memory: not measured")
        return
    y = range(len(names))
    ax.barh(list(y), [pss[n] / 2**20 for n in names], color="tab:purple")
    for i, name in zip(y, names, strict=True):
        if name in startup:
            ax.annotate(f" start-up {startup[name]:.1f} s", (pss[name] / 2**20, i), va="center", fontsize=7)
    ax.set_yticks(list(y), [_LABELS.get(n, n) for n in names], fontsize=7)
    ax.set(xlabel="MiB (PSS, whole process tree)", title="Memory after the heaviest load point, and start-up")


def render_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[str, dict[str, Any]] = results.get("points", {})
    fig, grid = plt.subplots(2, 2, figsize=(16, 11))
    axes = grid.ravel()
    series: dict[str, dict[int, dict[str, Any]]] = {}
    for key, p in points.items():
        stem, c = _split(key)
        if stem != "hotswap" and not stem.startswith(MOBILENET):
            series.setdefault(stem, {})[c] = p
    ax = axes[0]
    colors = plt.get_cmap("tab10")
    for index, (stem, by_c) in enumerate(item for item in series.items() if len(item[1]) > 1):
        cs = sorted(by_c)
        style = "--" if stem.startswith(("rest", "gateway", "floor.rest")) else "-"
        ax.plot(
            cs,
            [max(by_c[c]["rps"], 0.1) for c in cs],
            style if stem not in PEERS else ":",
            marker="s" if stem in PEERS else "o",
            color=colors(index % 10),
            label=_LABELS.get(stem, stem),
        )
    b32 = inprocess_best(results.get("inprocess", {}), 32).get("images_per_s")
    if b32:
        ax.axhline(b32, color="black", linestyle="--", linewidth=1, label="in-process batch 32 (images/s)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="concurrency",
        ylabel="requests/s (1 image each)",
        title="Throughput (fashion; text and housing in the table)",
    )
    if series or b32:
        ax.legend(fontsize=7)
    ax = axes[1]
    low = [(stem, by_c[min(by_c)]) for stem, by_c in series.items()]
    names = [f"{_LABELS.get(stem, stem)} (c{min(series[stem])})" for stem, _ in low]
    y = range(len(low))
    ax.barh(
        [i + 0.2 for i in y],
        [p["p50_ms"] if not math.isnan(p["p50_ms"]) else 0 for _, p in low],
        height=0.4,
        label="p50",
    )
    ax.barh(
        [i - 0.2 for i in y],
        [p["p99_ms"] if not math.isnan(p["p99_ms"]) else 0 for _, p in low],
        height=0.4,
        label="p99",
    )
    ax.set_yticks(list(y), names, fontsize=7)
    ax.set(xscale="log", xlabel="ms", title="Latency at the lowest concurrency")
    if low:
        ax.legend(fontsize=7)
    _plot_memory(axes[2], results)
    ax = axes[3]
    swap = results.get("hotswap")
    if swap and swap.get("timeline"):
        t = [row["t_s"] for row in swap["timeline"]]
        ax.plot(t, [row["p50_ms"] for row in swap["timeline"]], label="p50")
        ax.plot(t, [row["p99_ms"] for row in swap["timeline"]], label="p99")
        ax.axvline(0, color="red", linestyle="--", label=f"publish v{swap['new_version']}")
        if swap.get("old_unloaded_after_s") is not None:
            ax.axvline(
                swap["old_unloaded_after_s"], color="grey", linestyle=":", label="old version unloaded"
            )
        ax.set(
            xlabel="seconds from publish", ylabel="ms", title=f"Hot swap, gRPC c8: {swap['failed']} failed"
        )
        ax.legend(fontsize=7)
    else:
        ax.set_title("Hot swap: not measured")
    fig.tight_layout()
    png = io.BytesIO()
    try:
        fig.savefig(png, dpi=90, format="png")
    finally:
        plt.close(fig)
    write_atomic(path, png.getvalue())


def goals_table(goals: list[Goal]) -> list[str]:
    """The goals as markdown table rows (latest.md and README's performance section)."""
    lines = ["| goal | measured | target | verdict | figures |", "| --- | --- | --- | --- | --- |"]
    for g in goals:
        lines.append(f"| {g.text} | {g.measured()} | {g.goal()} | **{g.verdict()}** | {g.detail} |")
    return lines


README_START = "<!-- bench:goals (written by make bench: bench/report.py) -->"
README_END = "<!-- /bench:goals -->"


def update_readme(readme: Path, results: dict[str, Any], goals: list[Goal]) -> bool:
    """Replace README's block between the bench markers with this run's goals table and peers table; False
    when the markers are missing (nothing written)."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    load = results.get("environment", {}).get("load_average_at_start", [])
    block = [
        README_START,
        f"Latest full run ({results.get('started', '?')[:10]}, fashion CNN unless said; load average at "
        f"start {', '.join(f'{x:.1f}' for x in load)}):",
        "",
        *goals_table(goals),
        *_peers_table(results),  # the peers of the same run
        # the real-size model of the same run, its picture beside the fashion one (bench/results/)
        *mobilenet_section(results, "bench/results/latest.png", heading="#### "),
        "",
    ]
    write_atomic(readme, text[:start] + "\n".join(block) + text[end:])
    return True


def write_report(ctx: Any) -> list[Path]:
    results = ctx.results
    results["profiles"] = [asdict(p) for p in ctx.profiles]
    goals = evaluate(results)
    results["goals"] = [{**asdict(g), "status": g.status, "verdict": g.verdict()} for g in goals]
    out: Path = ctx.settings.results_dir
    out = out if out.is_absolute() else ctx.repo_root / out
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    json_path, md_path, png_path = out / f"{stamp}.json", out / "latest.md", out / "latest.png"
    write_atomic(json_path, json.dumps(results, indent=1, default=str, allow_nan=True) + "\n")
    render_plot(results, png_path)
    write_atomic(md_path, render_markdown(results, goals, png_path.name, out))
    written = [json_path, md_path, png_path]
    if render_mobilenet_plot(results, out / mobilenet_png(png_path.name)):
        written.append(out / mobilenet_png(png_path.name))
    # Only a full run of every scenario into the committed results folder speaks for README.
    full = not ctx.settings.smoke and set(ctx.settings.only) == set(SCENARIOS)
    readme = ctx.repo_root / "README.md"
    if full and out == ctx.repo_root / "bench" / "results" and update_readme(readme, results, goals):
        written.append(readme)
    return written


def rerender(results_dir: Path) -> Path:
    """Write ``latest.md`` again from the newest ``<date>.json`` there (its goals re-evaluated), e.g. after a new
    monitoring A/B file: ``python -m bench.report [results-dir]``. The figures come from the files only."""
    newest = sorted(
        p for p in results_dir.glob("*.json") if re.fullmatch(r"\d{4}-\d{2}-\d{2}\.json", p.name)
    )[-1]
    results = json.loads(newest.read_text(encoding="utf-8"))
    md_path = results_dir / "latest.md"
    write_atomic(md_path, render_markdown(results, evaluate(results), "latest.png", results_dir))
    return md_path


if __name__ == "__main__":
    import sys

    print(rerender(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"))
