"""bench.report: the Markdown table and the PNG plot rendered from a results dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.goals import evaluate
from bench.report import README_END, README_START, render_markdown, render_plot, update_readme


def test_markdown_has_goals_points_and_findings(results: dict[str, Any]) -> None:
    text = render_markdown(results, evaluate(results), "latest.png")
    assert "![throughput, latency and hot swap](latest.png)" in text
    assert (
        "| REST predict / gRPC Predict, c64 batching on, same requests | 0.375x | >= 0.5x | "
        "**missed: 75% of the target** |" in text
    )
    assert "| naive FastAPI + model.predict | 64 | 20 |" in text
    assert "12 of 132" in text  # errors are shown with their total
    assert "| modelserver gRPC, batching on | 64 | 8000 | 7.50 |" in text
    assert "400x | 0.40x |" in text  # ratios vs naive and vs in-process
    # the transport floor: labelled, its ratio to in-process shown, none to the naive server
    assert (
        "| transport floor: grpc.aio, canned reply | 64 | 10000 | 6.00 | 6.00 | 9.00 | 0 | - | 0.50x |"
        in text
    )
    assert "| transport floor: uvicorn, canned reply | 1 | 4000 | 0.25 |" in text
    assert "## Hot swap under load" in text and "| during | 400 |" in text
    assert "| fashion v3 | 640 | 40 | 22 | -45% |" in text
    assert "`_call (dataplane.py)` 40%" in text
    assert "## Findings on the missed goals" in text
    assert "- bentoml: example reason" in text


def test_markdown_sets_ours_beside_every_peer(results: dict[str, Any]) -> None:
    text = render_markdown(results, evaluate(results), "latest.png")
    assert "## Peers" in text
    assert "| modelserver REST, batching on | 3000 | 6.00 | 9.00 | - | - | - | 0.05 | reference |" in text
    assert "| Ray Serve 2.60.0 | 250 | 11.00 | 20.00 | 1500 | 1900 | 11.00 | 0.05 | ok |" in text
    assert (
        "| KServe 0.21.0 | 430 | 2.00 | 4.00 | 700 | 780 | 4.50 | 0.05 | class 3 where ours says 0 |" in text
    )
    assert "- kserve answer: class 3 where ours says 0" in text  # also listed with the failed checks
    assert "| gateway | 80 | 90 |" in text  # memory: PSS beside RSS
    assert "Ray Serve listened beyond 127.0.0.1 on 2 sockets ([::]:40001, 0.0.0.0:40002): Ray's gRPC" in text


def test_plot_is_a_png(results: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "latest.png"
    render_plot(results, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))


def test_plot_without_hot_swap_or_points(tmp_path: Path) -> None:
    path = tmp_path / "latest.png"
    render_plot({"points": {}}, path)
    assert path.stat().st_size > 0


def test_readme_block_is_replaced_with_the_run_goals(results: dict[str, Any], tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_START}\nold table\n{README_END}\n\nafter\n", encoding="utf-8")
    assert update_readme(readme, results, evaluate(results))
    text = readme.read_text(encoding="utf-8")
    assert (
        "old table" not in text
        and text.startswith("# title\n\n")
        and text.endswith(f"{README_END}\n\nafter\n")
    )
    assert "Latest full run (2026-11-23" in text
    assert "| REST predict / gRPC Predict, c64 batching on, same requests | 0.375x |" in text
    # the peers table of the same run follows the goals, inside the block
    peers = text.index("| server | c64 req/s | c1 p50 ms |")
    assert text.index("Latest full run") < peers < text.index(README_END)
    assert "| modelserver REST, batching on |" in text
    readme.write_text("no markers\n", encoding="utf-8")
    assert not update_readme(readme, results, evaluate(results))
    assert readme.read_text(encoding="utf-8") == "no markers\n"


def _ab(rounds: list[tuple[float, float, float, float]], flags_b: str) -> dict[str, Any]:
    """An ab-<name>-<date>.json of (gRPC A, gRPC B, REST A, REST B) req/s per round, 1 server core each."""
    rows = []
    for grpc_a, grpc_b, rest_a, rest_b in rounds:
        row: dict[str, Any] = {"grpc.A": grpc_a, "grpc.B": grpc_b, "rest.A": rest_a, "rest.B": rest_b}
        row |= {f"{p}.{s}.server_cores": 1.0 for p in ("grpc", "rest") for s in "AB"}
        row |= {"grpc.ratio": grpc_b / grpc_a, "rest.ratio": rest_b / rest_a}
        rows.append(row)
    return {"flags": {"A": "", "B": flags_b}, "rounds": rows, "load_average_at_start": "1.00 1.00 1.00"}


def test_markdown_shows_the_newest_monitoring_ab_of_each_kind(
    results: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "ab-drift-2026-01-01.json").write_text(json.dumps(_ab([(100, 50, 100, 50)], "--old")))
    newest = _ab([(100, 97, 200, 190), (100, 99, 200, 200), (100, 93, 200, 180)], "--new")
    (tmp_path / "ab-drift-2026-02-01.json").write_text(json.dumps(newest))
    (tmp_path / "ab-traces-sampled-2026-01-15.json").write_text(json.dumps(_ab([(100, 98, 10, 10)], "--s")))
    text = render_markdown(results, evaluate(results), "latest.png", tmp_path)
    assert "## Monitoring cost" in text and "--old" not in text
    # req/s B/A median (min-max); CPU per request is 1 core over req/s, so its ratio is A/B
    assert (
        "| defaults / `--new` | 2026-02-01, 3 rounds, load 1.00 1.00 1.00 | 0.97 (0.93-0.99) | 1.03 " in text
    )
    assert "| 0.95 (0.90-1.00) | 1.05 (1.00-1.11) |" in text
    assert "| defaults / `--s` | 2026-01-15, 1 rounds" in text  # traces-sampled is not taken for traces
    assert "every request recorded" not in text
    assert "## Monitoring cost" not in render_markdown(
        results, evaluate(results), "latest.png", tmp_path / "x"
    )


def test_markdown_shows_the_inprocess_limit_under_both_thread_rules(results: dict[str, Any]) -> None:
    results["inprocess"]["intra_op_1"] = {
        "batch1": {
            "batch": 1,
            "callers": 1,
            "images_per_s": 2500.0,
            "ms_per_call": 0.4,
            "cpu_ms_per_image": 0.6,
        },
        "batch32": {"batch": 32, "callers": 2, "images_per_s": 25000.0, "ms_per_call": 2.56},
    }
    text = render_markdown(results, evaluate(results), "latest.png")
    assert "| TensorFlow's default pools (ConcreteFunction) | 32 | 1 | 20000 | 1.600 | - |" in text
    assert "| intra-op pool 1 thread (C++ session) | 1 | 1 | 2500 | 0.400 | 0.600 |" in text
    assert "| intra-op pool 1 thread (C++ session) | 32 | 2 | 25000 | 2.560 | - |" in text
    # the served points' ratio is to the best limit: gRPC c64 8000 req/s over 25000 images/s
    assert "| modelserver gRPC, batching on | 64 | 8000 | 7.50 |" in text and "400x | 0.32x |" in text
