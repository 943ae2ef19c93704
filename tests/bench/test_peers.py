"""The peers (Ray Serve, KServe) and what measuring them needs: PSS of a process tree, the listening-address
check every bench server passes, stopping descendants that left the process group, the answers cross-check,
and - when their own venvs exist (`make bench-tools`) - both peers end to end through ``python -m bench --smoke``."""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from bench.answers import TOLERANCE, compare, fetch_answer
from bench.baselines.ray_service import parse_instances, split_rows, stack_rows
from bench.errors import ServerFailed
from bench.peer_envs import peer_version
from bench.procs import ServerProcess, listening_addresses, tree_pss_bytes, tree_rss_bytes
from bench.servers import is_loopback, serving
from tests.bench.conftest import run_smoke
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:8501", True),
        ("127.0.0.53:53", True),
        ("[::1]:9000", True),
        ("[::ffff:127.0.0.1]:80", True),
        ("0.0.0.0:8501", False),
        ("[::]:8501", False),
        ("192.0.2.2:52365", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_listening_addresses_of_this_process() -> None:
    with socket.socket() as listener, socket.socket() as idle:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        idle.bind(("127.0.0.1", 0))  # bound, not listening: not reported
        found = listening_addresses(os.getpid())
        assert f"127.0.0.1:{listener.getsockname()[1]}" in found
        assert f"127.0.0.1:{idle.getsockname()[1]}" not in found


def test_listening_addresses_on_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with socket.socket(socket.AF_INET6) as listener:
        try:
            listener.bind(("::1", 0))
        except OSError as exc:
            pytest.skip(f"no IPv6 loopback: {exc}")
        listener.listen()
        assert f"[::1]:{listener.getsockname()[1]}" in listening_addresses(os.getpid())


def test_pss_of_a_tree_is_positive_and_at_most_its_rss() -> None:
    pss, rss = tree_pss_bytes(os.getpid()), tree_rss_bytes(os.getpid())
    assert 0 < pss <= rss


_LISTEN = (
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(120)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listener(tmp_path: Path, cls: type[ServerProcess] = ServerProcess) -> tuple[ServerProcess, int]:
    port = _free_port()
    argv = [sys.executable, "-c", _LISTEN.format(port=port)]
    return cls(argv, name="listener", log_path=tmp_path / "listener.log"), port


def _until_listening(server: ServerProcess, port: int) -> None:
    server.wait_until(lambda: f"127.0.0.1:{port}" in server.listening(), 30, "listening")


def test_serving_records_start_up_time_and_loopback_listeners(tmp_path: Path) -> None:
    server, port = _listener(tmp_path)
    with serving(server, lambda: _until_listening(server, port)):
        assert server.ready_s is not None and server.ready_s > 0
        assert server.listening() == [f"127.0.0.1:{port}"]
    assert not server.alive()


class _Exposed(ServerProcess):
    def listening(self) -> list[str]:
        return [*super().listening(), "0.0.0.0:8500"]  # what a server bound to every interface shows


def test_serving_refuses_and_stops_a_server_listening_beyond_loopback(tmp_path: Path) -> None:
    server, port = _listener(tmp_path, _Exposed)
    with pytest.raises(ServerFailed, match=r"listens beyond 127\.0\.0\.1 on 0\.0\.0\.0:8500"):
        serving(server, lambda: _until_listening(server, port))
    assert not server.alive()


def test_serving_stops_a_server_that_never_gets_ready(tmp_path: Path) -> None:
    server, _ = _listener(tmp_path)

    def never() -> None:
        raise ServerFailed("listener", "not ready")

    with pytest.raises(ServerFailed):
        serving(server, never)
    assert not server.alive()


_SPAWN = (
    "import subprocess, sys, time; "
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
    "print(p.pid, flush=True); time.sleep(120)"
)


def test_stop_ends_descendants_that_left_the_process_group(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-c", _SPAWN], name="spawner", log_path=tmp_path / "spawner.log")
    server.start()
    server.wait_until(lambda: server.log_text().strip().isdigit(), 30, "spawned")
    child = int(server.log_text())
    assert os.getpgid(child) != os.getpgid(server.pid)  # killpg alone would miss it
    server.stop(timeout=2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or state == "Z"


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ([0.1, 0.7, 0.2], "ok"),
        ([0.1, 0.7 + TOLERANCE / 2, 0.2], "ok"),
        ([0.1, 0.6, 0.3], "probabilities differ from ours by up to 0.1"),
        ([0.7, 0.1, 0.2], "class 0 where ours says 1"),
        ([0.1, 0.9], "2 values where ours has 3"),
    ],
)
def test_compare_answers(answer: list[float], verdict: str) -> None:
    assert compare([0.1, 0.7, 0.2], answer) == verdict


def test_fetch_answer_asks_loopback_only(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text("{}")
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        fetch_answer("http://192.0.2.1:80/v1/models/fashion:predict", body)


def test_fetch_answer_says_when_nothing_answers(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text("{}")
    with pytest.raises(ValueError, match="no JSON answer"):
        fetch_answer(f"http://127.0.0.1:{_free_port()}/v1/models/fashion:predict", body, timeout_s=2)


def test_ray_batches_are_cut_back_per_request() -> None:
    parts = [np.zeros((1, 28, 28, 1)), np.ones((3, 28, 28, 1)), np.full((2, 28, 28, 1), 2.0)]
    batch = stack_rows(parts)
    assert batch.shape == (6, 28, 28, 1)
    outputs = batch.reshape(6, -1)[:, :10]  # stands in for the model's [rows, 10] probabilities
    back = split_rows(outputs, parts)
    assert [len(b) for b in back] == [1, 3, 2]
    assert [float(b.max()) for b in back] == [0.0, 1.0, 2.0]


def test_ray_parses_the_rest_body_and_rejects_bad_ones() -> None:
    image = np.zeros((28, 28, 1)).tolist()
    assert parse_instances(json.dumps({"instances": [image, image]}).encode()).shape == (2, 28, 28, 1)
    for bad in (b"{}", b'{"instances": [[1, 2, 3]]}', b"not json", b'{"instances": "x"}'):
        with pytest.raises(ValueError, match="instances"):
            parse_instances(bad)


def _installed(*peers: str) -> str:
    """The peers missing from their own venvs (bench/peer_envs.py), comma-separated."""
    return ", ".join(peer for peer in peers if peer_version(REPO_ROOT, peer) is None)


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.skipif(
    bool(_installed("ray", "kserve")),
    reason=f"no venv of their own for {_installed('ray', 'kserve')}: `make bench-tools`",
)
def test_peers_end_to_end(load_tools: None, model_repo: Path, data_dir: Path, tmp_path: Path) -> None:
    """Both peers started, driven by wrk, measured and cross-checked against our modelserver's answer."""
    measured = run_smoke("ray,kserve", model_repo, data_dir, tmp_path, timeout_s=840)
    assert measured.get("skipped", {}) == {}, measured.get("skipped")
    for peer in ("ray", "kserve"):
        for c in (1, 4):
            assert measured["points"][f"{peer}.c{c}"]["ok"] > 0, (peer, c)
            assert measured["points"][f"{peer}.c{c}"]["loadgen_cpu_s"] > 0, (peer, c)
        assert measured["verified"][f"{peer} answer"] == "ok"
        assert 0 < measured["pss_bytes"][peer] <= measured["rss_bytes"][peer]
        assert measured["startup_s"][peer] > 0
    assert all(is_loopback(a) for a in measured["listening"]["kserve"])
    assert any(a.startswith("127.0.0.1:") for a in measured["listening"]["ray"])  # the Serve proxy
    assert "kserve" not in measured.get("exposed", {})
    text = (tmp_path / "latest.md").read_text()
    assert "| Ray Serve 2.60.0 |" in text and "| KServe 0.21.0 |" in text


class _Answers(http.server.BaseHTTPRequestHandler):
    replies: ClassVar[dict[str, object]] = {
        "/tf": {"predictions": [[0.1, 0.9]]},
        "/bare": [[0.1, 0.9]],
        "/none": {"outputs": [1]},
    }

    def do_POST(self) -> None:  # http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(self.replies[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_fetch_answer_reads_tf_serving_and_bare_rows(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"instances": [[0]]}')
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert fetch_answer(f"{base}/tf", body) == [0.1, 0.9]
        assert fetch_answer(f"{base}/bare", body) == [0.1, 0.9]  # BentoML's shape
        with pytest.raises(ValueError, match="no predictions in the answer"):
            fetch_answer(f"{base}/none", body)
    finally:
        server.shutdown()
        server.server_close()
