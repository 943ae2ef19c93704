"""The real-size model (issue 30): its goals against the in-process best batch and the best peer of the same
run, its section and picture in the report, and its request bodies - from a results dict and numpy, no
TensorFlow and no server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.goals import PEERS, Goal, evaluate
from bench.report import (
    README_END,
    README_START,
    mobilenet_png,
    mobilenet_section,
    render_markdown,
    render_mobilenet_plot,
    update_readme,
)
from bench.scenarios.mobilenet import bodies, picture
from tests.bench.conftest import point, run_smoke


@pytest.fixture
def mobilenet_results(results: dict[str, Any]) -> dict[str, Any]:
    points = {
        "mobilenet.grpc.c16": point(95, 160, 240),
        "mobilenet.grpc.c64": point(98, 640, 900),
        "mobilenet.rest.c16": point(60, 260, 400),
        "mobilenet.rest.c64": point(62, 1000, 1400),
        "mobilenet.gateway.c16": point(70, 220, 330),
        "mobilenet.bentoml.c16": point(30, 500, 700),
        "mobilenet.ray.c16": point(50, 320, 500),
        "mobilenet.ray.c64": point(45, 1400, 2000),
    }
    limit = {"batch": 8, "images_per_s": 100.0, "ms_per_call": 80.0, "calls": 10, "seconds": 0.8}
    return {
        **results,
        "settings": {**results["settings"], "mobilenet_concurrencies": [1, 16, 64]},
        "points": {**results["points"], **points},
        "mobilenet": {"source": "built", "inprocess": {"batch8": limit, "best": limit}},
        "rss_bytes": {**results.get("rss_bytes", {}), "modelserver mobilenet": 300 * 2**20},
    }


def by_key(results: dict[str, Any]) -> dict[str, Goal]:
    return {g.key: g for g in evaluate(results)}


def test_goals_are_ratios_to_the_inprocess_limit_and_the_best_peer(mobilenet_results: dict[str, Any]) -> None:
    goals = by_key(mobilenet_results)
    grpc, gateway = goals["mobilenet_grpc_vs_inprocess"], goals["mobilenet_gateway_vs_inprocess"]
    assert (grpc.status, grpc.value) == ("met", pytest.approx(0.95))
    assert (gateway.status, gateway.value) == ("missed", pytest.approx(0.7))
    c16, c64 = goals["mobilenet_vs_best_peer_c16"], goals["mobilenet_vs_best_peer_c64"]
    assert (c16.status, c16.value) == ("missed", pytest.approx(60 / 50))  # Ray Serve is the best peer
    assert "BentoML 30.0, Ray Serve 50.0" in c16.detail
    assert (c64.status, c64.value) == ("missed", pytest.approx(62 / 45))  # 1.38x < 1.5x


def test_goals_name_the_cpu_each_request_costs_and_what_the_cores_allow(
    mobilenet_results: dict[str, Any],
) -> None:
    points, best = mobilenet_results["points"], mobilenet_results["mobilenet"]["inprocess"]["best"]
    best["cpu_ms_per_image"] = 16.0
    # 95 req/s over 7 s of wall time: 665 requests; 13.3 CPU seconds = 20 ms each
    points["mobilenet.grpc.c16"].update(server_cpu_s=13.3, wall_s=7.0)
    # 70 uploads/s over 10 s: gateway 5.6 s (8 ms each) + model server 14 s (20 ms each)
    points["mobilenet.gateway.c16"].update(server_cpu_s=5.6, upstream_cpu_s=14.0, wall_s=10.0)
    mobilenet_results["environment"] = {"cores": 2}
    goals = by_key(mobilenet_results)
    assert goals["mobilenet_grpc_vs_inprocess"].detail.endswith(
        "CPU per request: 20.0 ms vs 16.0 ms per image in process (2 cores allow 100 req/s = 1.00x)"
    )
    assert goals["mobilenet_gateway_vs_inprocess"].detail.endswith(
        "CPU per request: gateway 8.0 + model server 20.0 ms vs 16.0 ms per image in process "
        "(2 cores allow 71 req/s = 0.71x)"
    )
    del points["mobilenet.grpc.c16"]["wall_s"]  # a results file from before the figures: none shown
    assert "CPU per request" not in by_key(mobilenet_results)["mobilenet_grpc_vs_inprocess"].detail


def test_the_limit_is_the_best_thread_rule_and_the_section_shows_both(
    mobilenet_results: dict[str, Any],
) -> None:
    """The model servers run the intra-op pool at one thread; the limit measured under that rule (one caller
    per core) is the best here, so the goals divide by it and name it, and the section shows both rules."""
    pooled = {
        "batch": 8,
        "callers": 2,
        "images_per_s": 125.0,
        "ms_per_call": 128.0,
        "calls": 10,
        "seconds": 5.0,
    }
    inprocess = mobilenet_results["mobilenet"]["inprocess"]
    inprocess["intra_op_1"] = {"batch8": pooled, "best": pooled}
    inprocess["best"] = {**pooled, "rule": "intra-op pool 1 thread"}
    grpc = by_key(mobilenet_results)["mobilenet_grpc_vs_inprocess"]
    assert (grpc.status, grpc.value) == ("missed", pytest.approx(95 / 125))
    assert grpc.detail.startswith(
        "95.0 req/s vs 125.0 images/s (batch 8) (intra-op pool 1 thread, 2 caller(s))"
    )
    section = "\n".join(mobilenet_section(mobilenet_results, "latest.png"))
    assert "TensorFlow's default pools from 1 caller: batch 8 100.0 images/s (80.0 ms/call)" in section
    assert (
        "the intra-op pool at 1 thread (what the model servers here run) from 2 callers: batch 8 125.0"
        in section
    )


def test_goals_without_the_scenario_are_not_measured(results: dict[str, Any]) -> None:
    goals = by_key(results)
    assert goals["mobilenet_grpc_vs_inprocess"].verdict().startswith("not measured: mobilenet.grpc.c16")
    assert goals["mobilenet_vs_best_peer_c64"].status == "not measured"


def test_report_has_the_mobilenet_table_and_picture(
    mobilenet_results: dict[str, Any], tmp_path: Path
) -> None:
    text = render_markdown(mobilenet_results, evaluate(mobilenet_results), "latest.png")
    assert "## Real-size model: MobileNetV2" in text and "(latest-mobilenet.png)" in text
    assert "| TF Serving gRPC Predict | 16 | 95.0 |" in text and "| 0.95x |" in text
    assert "| Ray Serve (REST JSON) | 64 | 45.0 |" in text
    assert "modelserver mobilenet: RSS 300 MiB" in text
    fashion_table = text.split("## Load points")[1].split("##")[0]
    assert "mobilenet" not in fashion_table  # its own section, against its own limit
    png = tmp_path / mobilenet_png("latest.png")
    assert render_mobilenet_plot(mobilenet_results, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not render_mobilenet_plot({"points": {}}, tmp_path / "none.png")


def test_bodies_carry_the_same_picture(tmp_path: Path) -> None:
    tensor = picture(np.arange(784, dtype=np.uint8).reshape(28, 28))
    assert tensor.shape == (1, 224, 224, 3) and tensor.dtype == np.float32
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0
    paths = bodies(tensor, tmp_path)
    header_len = int((tmp_path / "mobilenet.oip.header_length").read_text())
    raw = paths["oip"].read_bytes()
    header = json.loads(raw[:header_len])
    assert header["inputs"][0]["shape"] == [1, 224, 224, 3]
    assert np.array_equal(np.frombuffer(raw[header_len:], "<f4").reshape(tensor.shape), tensor)
    rest = json.loads(paths["rest"].read_bytes())
    assert np.allclose(np.asarray(rest["instances"], dtype=np.float32), tensor)
    grpc = paths["grpc"].read_bytes()
    assert int.from_bytes(grpc[1:5], "big") == len(grpc) - 5


def test_readme_block_gets_the_mobilenet_table_and_picture(
    mobilenet_results: dict[str, Any], tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_START}\nold\n{README_END}\n", encoding="utf-8")
    assert update_readme(readme, mobilenet_results, evaluate(mobilenet_results))
    text = readme.read_text(encoding="utf-8")
    block = text[: text.index(README_END)]
    assert "#### Real-size model: MobileNetV2" in block
    assert (
        "(bench/results/latest-mobilenet.png)" in block and "| TF Serving gRPC Predict | 16 | 95.0 |" in block
    )


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_mobilenet_end_to_end(
    load_tools: None,
    model_repo: Path,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real-size scenario through ``python -m bench --smoke --only mobilenet``: MobileNetV2 built and
    served, every path answered (the gateway's mixed-size JPEG uploads too), the in-process limit and the goals judged. The peers are left out here
    (an empty BENCH_PEER_VENVS: test_peers.py runs them), which the run records as not measured."""
    monkeypatch.setenv("BENCH_PEER_VENVS", str(tmp_path / "no-peers"))
    measured = run_smoke("mobilenet", model_repo, data_dir, tmp_path / "out", timeout_s=840)
    assert measured["mobilenet"]["inprocess"]["best"]["images_per_s"] > 0
    for path in ("grpc", "oip", "rest", "gateway"):
        for c in (1, 2):
            p = measured["points"][f"mobilenet.{path}.c{c}"]
            assert p["ok"] > 0 and p["errors"] == 0, (path, c, p)
    assert measured["verified"]["grpc.mobilenet"] == "ok"
    assert measured["verified"]["gateway.mobilenet"] == "ok"  # a JPEG upload answered with a label
    assert set(measured["skipped"]) == {f"mobilenet {peer}" for peer in PEERS}
    goals = {g["key"]: g for g in measured["goals"]}
    assert goals["mobilenet_grpc_vs_inprocess"]["status"] in ("met", "missed")
    assert {"modelserver mobilenet", "gateway mobilenet"} <= set(measured["rss_bytes"])


def test_point_window_covers_replies_per_connection() -> None:
    """A point above the lowest concurrency lasts long enough for several replies per connection at the
    path's c1 rate (REST JSON at c64 measured 0 req/s in a 6 s window), without a warm-up of its own."""
    from bench.scenarios.mobilenet import MAX_WINDOW_S, REPLIES_PER_CONNECTION, window
    from bench.settings import BenchSettings

    s = BenchSettings(duration_s=6, warmup_s=1, http_timeout_s=5)
    assert window(s, 1, None) == (6, 10, 1)  # the lowest concurrency: the settings' window
    duration, timeout, warmup = window(s, 64, 18.6)  # MobileNetV2 REST JSON on 2026-12-06
    assert duration == pytest.approx(REPLIES_PER_CONNECTION * 64 / 18.6)
    assert timeout >= 64 / 18.6 and warmup == 0
    assert window(s, 16, 1000.0)[0] == 6  # a fast path keeps the settings' window
    assert window(s, 64, 0.1)[:2] == (MAX_WINDOW_S, MAX_WINDOW_S)  # bounded
