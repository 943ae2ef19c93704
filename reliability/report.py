"""The suite's results: ``results.json`` (every figure, case and failure) and ``README.md`` (the figures a
reader wants), both written atomically (temp file on the same file system, fsync, rename)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devtools.files import write_atomic
from reliability.outcome import Outcome

__all__ = ["headline", "markdown", "write_atomic", "write_results"]


def _get(figures: dict[str, Any], *keys: str) -> Any:
    value: Any = figures
    for key in keys:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return value if value != {} else None


def headline(outcome: Outcome) -> str:
    """One line with the figure that matters for each scenario."""
    f = outcome.figures
    if outcome.name == "fuzz":
        return (
            f"{f.get('cases')} cases (gateway {_get(f, 'gateway', 'cases')} over "
            f"{_get(f, 'gateway', 'operations')} operations, modelserver {_get(f, 'modelserver', 'cases')}); "
            f"{f.get('server_errors_5xx')} server errors, {f.get('schema_violations')} schema violations"
        )
    if outcome.name == "hostile":
        growth = ", ".join(f"{k} +{v} MiB" for k, v in (f.get("rss_growth_mib") or {}).items())
        return (
            f"{f.get('as_expected')}/{f.get('cases')} cases answered as expected (4xx with a message), "
            f"{f.get('server_errors_5xx')} 5xx; peak RSS growth {growth}"
        )
    if outcome.name == "versions":
        return (
            f"{f.get('never_served')}/{f.get('bad_versions')} never served, {f.get('reported_in_status')}/"
            f"{f.get('bad_versions')} reported in status, previous kept serving in "
            f"{f.get('previous_kept_serving')}/"
            f"{f.get('bad_versions')}; {f.get('failed_requests')} failed of "
            f"{_get(f, 'requests_during', 'requests')} requests"
        )
    if outcome.name == "faults":
        kill = f.get("sigkill_under_load") or {}
        slow = f.get("slow_model_server") or {}
        return (
            f"SIGKILL: 503 in <= {kill.get('slowest_answer_while_down_s')} s, served again "
            f"{kill.get('recovery_after_restart_s')} s after the restart; slow server: "
            f"{slow.get('statuses', [None])[0]} after <= {slow.get('slowest_answer_s')} s "
            f"(deadline {slow.get('deadline_s')} s); models dir unavailable: "
            f"{_get(f, 'models_dir_unavailable', 'failed_requests')} failed requests"
        )
    if outcome.name == "hotswap":
        return (
            f"{f.get('swaps')} swaps, {f.get('failed_requests')} failed of {_get(f, 'requests', 'requests')} "
            f"requests, versions left {f.get('versions_available_after')}, "
            f"RSS drift {f.get('rss_drift', 0):+.1%}"
        )
    if outcome.name == "soak":
        services = f.get("services") or {}
        drift = ", ".join(f"{k} {v['rss_drift']:+.1%}" for k, v in services.items())
        return (
            f"{_get(f, 'requests', 'requests')} requests, {f.get('failed_requests')} failed, p99 "
            f"{_get(f, 'requests', 'p99_ms')} ms; RSS drift after warm-up {drift}"
        )
    if outcome.name == "security":
        return (
            f"admin: {f.get('bad_credentials_refused')}/{f.get('bad_credentials_tried')} "
            "bad credentials refused; "
            f"traversal: {f.get('traversal_refused')}/{f.get('traversal_tried')} refused; clean replies "
            f"{f.get('replies_clean')}/{f.get('replies_checked')}; root containers: "
            f"{len(f.get('containers_as_root') or [])}; burst of {f.get('burst_sent')}: "
            f"{f.get('burst_refused_429')} x 429"
        )
    if outcome.name == "attack":
        return (
            f"control: {f.get('control_refused')}/{f.get('control_tried')} reloads refused, healed in "
            f"{f.get('control_heal_seconds')} s; gRPC tensors {f.get('grpc_tensor_refused')}/"
            f"{f.get('grpc_tensor_tried')} refused (worst anonymous RSS +{f.get('grpc_tensor_worst_rss_mib')} MiB); "
            f"gzip bomb {f.get('bomb_inflated_mib')} MiB: {f.get('bomb_modelserver_status')} "
            f"(+{f.get('bomb_modelserver_rss_mib')} MiB); {f.get('header_bytes', 0) >> 20} MiB header: "
            f"{f.get('modelserver_header_status')}/{f.get('gateway_header_status')}; "
            f"{f.get('streamed_body_mib')} MiB JSON: {f.get('chunked_JSON_status')} "
            f"(+{f.get('chunked_JSON_rss_mib')} MiB); logs: {f.get('log_tracebacks')} tracebacks"
        )
    if outcome.name == "exhaustion":
        return "; ".join(
            f"{name}: {item.get('reply') or item.get('status') or ''} +{item.get('rss_anon_peak_mib')}/"
            f"+{item.get('rss_anon_kept_mib')} MiB, {item.get('neighbour_errors')} neighbour errors"
            for name, item in f.items()
            if isinstance(item, dict)
        )
    return ""


def markdown(outcomes: list[Outcome], meta: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> str:
    runs = {(r.get("run") or {}).get("commit") for r in rows or []}
    lines = [
        "# Reliability and security results",
        "",
        f"Run {meta['finished']} on {meta['cores']} cores, commit `{meta['commit']}`, "
        f"{meta['seconds']:.0f} s in all (`{meta['command']}`). Real modelserver and gateway processes on "
        "127.0.0.1; the models are exported by `export/` from the shared datasets. Every figure below is in "
        "`results.json` with each case."
        + (
            " Scenarios come from more than one run (`--only`); each names its run in `results.json`."
            if len(runs) > 1
            else ""
        ),
        "",
        "| scenario | result | figures | seconds |",
        "| --- | --- | --- | --- |",
    ]
    for outcome in outcomes:
        misses = len(outcome.failures) + len(outcome.over_bound)
        verdict = "pass" if outcome.passed else f"**FAIL ({misses})**"
        lines.append(f"| {outcome.title} | {verdict} | {headline(outcome)} | {outcome.seconds:.0f} |")
    for outcome in outcomes:
        lines += ["", f"## {outcome.title}", ""]
        if outcome.failures:
            lines.append("Failures:")
            lines += [f"- {failure}" for failure in outcome.failures[:30]]
            if len(outcome.failures) > 30:
                lines.append(f"- ... and {len(outcome.failures) - 30} more (results.json)")
            lines.append("")
        if outcome.over_bound:
            lines += ["Durations over their bound:"] + [f"- {miss}" for miss in outcome.over_bound] + [""]
        if outcome.notes:
            lines += [f"- note: {note}" for note in outcome.notes] + [""]
        if outcome.cases and outcome.name in ("hostile", "versions", "attack"):
            keys = [k for k in outcome.cases[0] if k not in ("ok",)]
            lines.append("| " + " | ".join(keys) + " |")
            lines.append("|" + " --- |" * len(keys))
            for case in outcome.cases:
                cells = [str(case.get(k, "")).replace("|", "\\|").replace("\n", " ")[:160] for k in keys]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["```json", json.dumps(outcome.figures, indent=2)[:6000], "```"]
    return "\n".join(lines) + "\n"


def _load(directory: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((directory / "results.json").read_text(encoding="utf-8"))["scenarios"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_results(
    directory: Path, outcomes: list[Outcome], meta: dict[str, Any], *, merge: bool = False
) -> None:
    """Write both files. ``merge``: keep the scenarios of the previous results that this run did not run
    (each scenario records the run - commit and time - that produced it)."""
    fresh = [
        {**o.as_dict(), "run": {k: meta[k] for k in ("finished", "commit", "command")}} for o in outcomes
    ]
    names = {o.name for o in outcomes}
    kept = [s for s in _load(directory) if merge and s.get("name") not in names]
    order = ["fuzz", "hostile", "versions", "faults", "hotswap", "soak", "security", "attack"]
    scenarios = sorted(kept + fresh, key=lambda s: order.index(s["name"]) if s["name"] in order else 99)
    body = {"meta": meta, "passed": all(s["passed"] for s in scenarios), "scenarios": scenarios}
    write_atomic(directory / "results.json", json.dumps(body, indent=2) + "\n")
    write_atomic(
        directory / "README.md", markdown([Outcome.from_dict(s) for s in scenarios], meta, scenarios)
    )
