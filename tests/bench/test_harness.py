"""``python -m bench --smoke``: the harness end to end at a tiny scale on the real export's tiny models -
real model server and gateway processes on free loopback ports, real h2load / wrk load, the report files.
Checks that it runs and that what it measured is well-formed; never how fast anything was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.conftest import run_smoke

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SCENARIOS = "floor,memory,modelserver,gateway,hotswap"  # inprocess and naive: test_baselines.py


@pytest.fixture(scope="module")
def smoke_run(
    load_tools: None, model_repo: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("bench_results")
    run_smoke(SCENARIOS, model_repo, data_dir, out, timeout_s=540)
    return out


@pytest.fixture(scope="module")
def measured(smoke_run: Path) -> dict:
    (found,) = smoke_run.glob("20*.json")
    return json.loads(found.read_text())


def test_smoke_run_measures_every_selected_scenario(measured: dict) -> None:
    assert measured.get("skipped", {}) == {}
    points = measured["points"]
    for key in (
        "grpc.batching_off.c4",
        "grpc.batching_on.c1",
        "grpc.batching_on.c4",
        "rest.batching_on.c4",
        "gateway.upload.c1",
        "gateway.upload.c4",
        "gateway.explain.c1",
        "gateway.text.c4",
        "gateway.housing.c4",
        "grpc.text.c4",
        "grpc.housing.c4",
        "hotswap.c8",
        "floor.grpc.c1",
        "floor.grpc.c4",
        "floor.rest.c1",
        "floor.rest.c4",
    ):
        assert points[key]["ok"] > 0, key
        assert points[key]["loadgen_cpu_s"] > 0, key
        assert points[key]["server_cpu_s"] > 0, key


def test_every_grpc_answer_is_verified_by_the_server_counts(measured: dict) -> None:
    assert set(measured["verified"].values()) == {"ok"}
    for key, point in measured["points"].items():
        if point["tool"] == "h2load" and not key.startswith("floor."):  # the floor: a sampled client check
            assert point["grpc_errors"] == 0, key
            assert point["grpc_ok"] >= point["ok"], key


def test_hot_swap_publishes_a_new_version_without_failed_requests(measured: dict) -> None:
    swap = measured["hotswap"]
    assert swap["new_version"] == swap["old_version"] + 1
    assert swap["available_after_s"] is not None
    assert swap["failed"] == 0
    assert sum(phase["requests"] for phase in swap["phases"].values()) > 0


def test_memory_compares_rss_growth_with_the_loader_estimate(measured: dict) -> None:
    rows = {row["model"]: row for row in measured["memory"]["models"]}
    assert set(rows) == {"fashion", "text", "housing"}
    assert all(
        row["estimate"] and row["rss_after"] > measured["memory"]["baseline_rss"] for row in rows.values()
    )
    assert measured["rss_bytes"]["gateway"] > 0


def test_report_files_are_written(smoke_run: Path) -> None:
    text = (smoke_run / "latest.md").read_text()
    assert (
        "## Goals (issues 8, 14 and 30)" in text
        and "| gRPC Predict c4 batching on / in-process batch 32 |" in text
    )
    assert "| transport floor: grpc.aio, canned reply | 4 |" in text
    assert "| transport floor: uvicorn, canned reply | 1 |" in text
    assert (smoke_run / "latest.png").read_bytes()[:4] == b"\x89PNG"
