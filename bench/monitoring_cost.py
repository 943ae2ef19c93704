"""The "Monitoring cost" section of ``latest.md``: what drift and traces cost the model server, from the newest
interleaved A/B of each (``python -m bench.ab``: ``ab-drift-<date>.json``, ``ab-traces-<date>.json``,
``ab-traces-sampled-<date>.json`` in the results folder; A without the feature, B with it; ``ab-aa-<date>.json``:
A and B the same, which shows how far the machine's noise alone moves the figures). The figures are
B/A per round: req/s (under the machine's other load, noisy) and the server's CPU per request."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["AB_RUNS", "cpu_per_request", "latest_ab", "monitoring_cost_section"]

# name in ab-<name>-<date>.json -> what its B side has on (A: the same server without it)
AB_RUNS = {
    "drift": "drift monitor on (default sample: at most 100 rows a second per version)",
    "traces-sampled": "traces on at the default sampling (1 % of roots), OTLP to a local sink",
    "traces": "traces on, every request recorded, OTLP to a local sink",
    "aa": "nothing: an A/A run, both servers the same (the noise floor of these figures)",
}
_FILE = re.compile(r"ab-(?P<name>.+)-(?P<date>\d{4}-\d{2}-\d{2})\.json")


def latest_ab(results_dir: Path, name: str) -> tuple[str, dict[str, Any]] | None:
    """The newest ``ab-<name>-<date>.json`` (date, its content), or None."""
    found = sorted(
        (match["date"], path)
        for path in results_dir.glob(f"ab-{name}-*.json")
        if (match := _FILE.fullmatch(path.name)) and match["name"] == name
    )
    if not found:
        return None
    date, path = found[-1]
    return date, json.loads(path.read_text(encoding="utf-8"))


def cpu_per_request(row: dict[str, Any], proto: str, side: str) -> float:
    """The server's CPU seconds per answered request at one point of a round (what a monitoring feature adds
    to each request; less sensitive to the machine's other load than req/s)."""
    return max(row.get(f"{proto}.{side}.server_cores") or 0.0, 1e-9) / max(row[f"{proto}.{side}"], 1e-9)


def _ratios(run: dict[str, Any], proto: str, kind: str) -> str:
    rounds = [r for r in run.get("rounds", []) if f"{proto}.A" in r and f"{proto}.B" in r]
    if kind == "cpu_ratio":  # also for files written before bench.ab stored it
        values = [cpu_per_request(r, proto, "B") / cpu_per_request(r, proto, "A") for r in rounds]
    else:
        values = [r[f"{proto}.{kind}"] for r in rounds]
    if not values:
        return "-"
    values.sort()
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    return f"{median:.2f} ({values[0]:.2f}-{values[-1]:.2f})"


def _flags(run: dict[str, Any], side: str) -> str:
    flags = run.get("flags", {}).get(side, "")
    return f"`{flags}`" if flags else "defaults"


def monitoring_cost_section(results_dir: Path) -> list[str]:
    """Markdown lines (empty when no A/B file is there)."""
    rows = []
    for name, what in AB_RUNS.items():
        found = latest_ab(results_dir, name)
        if found is None:
            continue
        date, run = found
        rows.append(
            f"| {what} | {_flags(run, 'A')} / {_flags(run, 'B')} | {date}, {len(run.get('rounds', []))} rounds, "
            f"load {run.get('load_average_at_start', '?')}"
            f" | {_ratios(run, 'grpc', 'ratio')} | {_ratios(run, 'grpc', 'cpu_ratio')}"
            f" | {_ratios(run, 'rest', 'ratio')} | {_ratios(run, 'rest', 'cpu_ratio')} |"
        )
    if not rows:
        return []
    return [
        "",
        "## Monitoring cost (interleaved A/B, fashion c64, batching on)",
        "",
        "B/A per round, median (min-max): req/s (1.00 = free; the target is above 0.95) and the server's CPU "
        "per request (1.00 = free). From `python -m bench.ab --a-flags=<feature off> --b-workers 1 --name <name>` "
        "(the newest `ab-<name>-<date>.json` here); a noisy machine moves req/s more than CPU per request.",
        "",
        "| B (A: the same server without it) | flags A / B | run | gRPC req/s | gRPC CPU/request | REST req/s "
        "| REST CPU/request |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ]
