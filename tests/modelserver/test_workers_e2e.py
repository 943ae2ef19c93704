"""End to end: ``--num_workers=2`` - a supervisor and two real serving processes sharing the gRPC and REST
ports. Which worker accepted a connection is read from /proc (the socket's owner), so "both answer" is
observed, not assumed; every check that the workers agree goes through many fresh connections."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from devtools.procs import ServerFailed, child_pids, free_ports, pids_with_connection, wait_for_port
from devtools.servers import ModelServerHandle, modelserver_process, start_gateway, start_modelserver
from devtools.tiny_models import publish
from devtools.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "workers-e2e-token-0123456789"
CONNECTIONS = 24  # all on one of two workers by chance: 2 * 2**-24
# Each channel its own connection (grpc shares one between channels to the same target by default).
FRESH = [("grpc.use_local_subchannel_pool", 1)]
MONITORING = 'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n'


def config_text(root: Path, *models: str) -> str:
    entries = " ".join(f'config {{ name: "{m}" base_path: "{root / m}" }}' for m in models)
    return f"model_config_list {{ {entries} }}"


def predict(target: str, model: str, x: float) -> tuple[int, float]:
    """One Predict on a fresh channel (a new connection): (version, y)."""
    with grpc.insecure_channel(target, options=FRESH) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([x], np.float32)))
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        return reply.model_spec.version.value, float(tf.make_ndarray(reply.outputs["y"])[0])


def status(target: str, model: str) -> list[tuple[int, str]]:
    """GetModelStatus on a fresh channel."""
    with grpc.insecure_channel(target, options=FRESH) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
        return [
            (s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
            for s in reply.model_version_status
        ]


def see_every_worker(target: str, model: str, seen: set[tuple[tuple[int, str], ...]]) -> None:
    """Replace ``seen`` with the distinct statuses of ``model`` over CONNECTIONS fresh connections."""
    seen.clear()
    seen.update(tuple(status(target, model)) for _ in range(CONNECTIONS))


def reload(target: str, text: str, token: str = TOKEN) -> model_management_pb2.ReloadConfigResponse:
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(text, request.config)
    with grpc.insecure_channel(target, options=FRESH) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        return stub.HandleReloadConfigRequest(
            request, timeout=120, metadata=[("authorization", f"Bearer {token}")]
        )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the metrics page, from a fresh connection."""
    with httpx.Client(timeout=30) as client:
        body = client.get(f"{url}/monitoring/prometheus/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def requests_total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str) -> float:
    return sum(
        value
        for (name, items), value in samples.items()
        if name == "modelserver_requests_total" and labels.items() <= dict(items).items()
    )


@pytest.fixture(scope="module")
def root(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workers_repo")
    publish(tiny["half_plus_two"], root / "half", 1)
    publish(tiny["half_plus_three"], root / "three", 1)
    (root / "monitoring.config").write_text(MONITORING)
    return root


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    config = root / "models.config"
    config.write_text(config_text(root, "half"))
    log = tmp_path_factory.mktemp("workers_logs") / "server.log"
    flags = (
        "--num_workers=2",
        "--num_load_threads=2",  # reloads then reconcile models concurrently in every worker
        f"--monitoring_config_file={root / 'monitoring.config'}",
        f"--allowed_model_base_paths={root}",
    )
    env = {"MODELSERVER_MODEL_CONTROL_TOKEN": TOKEN}
    with start_modelserver(config, extra_flags=flags, env=env, log_path=log) as handle:
        wait_until(lambda: "all 2 workers serving" in handle.log_text(), "both workers serving")
        yield handle


def gone(pid: int) -> bool:
    """Exited (reaped, or a zombie whose parent is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def started_pids(log: str) -> list[int]:
    found = re.search(r"started 2 workers: pids (\d+), (\d+)", log)
    assert found, log
    return [int(found.group(1)), int(found.group(2))]


def fails_to_start(handle: ModelServerHandle) -> int:
    """Start a server expected to exit during start; its exit status. (Its ports may accept connections
    anyway when another server holds them.)"""
    with contextlib.suppress(ServerFailed):
        handle.start()
    assert handle.process is not None
    return handle.process.wait(60)


def workers(server: ModelServerHandle) -> list[int]:
    pids = child_pids(server.pid)
    assert len(pids) == 2, f"expected 2 workers under the supervisor, found {pids}"
    return pids


def test_both_workers_answer_grpc_and_rest(server: ModelServerHandle) -> None:
    pids = workers(server)
    channels = [grpc.insecure_channel(server.grpc_target, options=FRESH) for _ in range(CONNECTIONS)]
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(CONNECTIONS)]
    try:
        for channel in channels:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "half"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([4.0], np.float32)))
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
            assert tf.make_ndarray(reply.outputs["y"]).tolist() == [4.0]
        for client in clients:
            reply = client.post("/v1/models/half:predict", json={"instances": [4.0]})
            assert reply.status_code == 200 and reply.json() == {"predictions": [4.0]}
        # every connection is still open: each worker must hold some of them, on both ports
        assert pids_with_connection(pids, server.grpc_port) == set(pids)
        assert pids_with_connection(pids, server.rest_port or 0) == set(pids)
    finally:
        for channel in channels:
            channel.close()
        for client in clients:
            client.close()


def test_every_worker_gets_the_flags(server: ModelServerHandle) -> None:
    # each worker has its own manager, with the load threads the command line asked for
    assert server.log_text().count("num_load_threads=2, num_unload_threads=0") == 2


def test_reload_reaches_every_worker(server: ModelServerHandle, root: Path) -> None:
    target = server.grpc_target
    reloads_before = requests_total(scrape(server.url), api="reload")
    assert reload(target, config_text(root, "half", "three")).status.error_code == 0
    # whichever worker each fresh connection reaches, it already serves the reloaded config
    for _ in range(CONNECTIONS):
        assert status(target, "three") == [(1, "AVAILABLE")]
        assert predict(target, "three", 2.0) == (1, 4.0)

    assert reload(target, config_text(root, "half")).status.error_code == 0
    # OK may come back while a worker still unloads (TF Serving's reload waits for loads, not unloads):
    # every worker must reach END; one that never does fails at the deadline.
    seen: set[tuple[tuple[int, str], ...]] = set()

    def all_ended() -> bool:
        see_every_worker(target, "three", seen)
        return seen == {((1, "END"),)}

    try:
        wait_until(all_ended, "every worker to end the removed model")
    except WaitTimeout:
        pytest.fail(f"the removed model did not end on every worker: {seen}")
    for _ in range(CONNECTIONS):
        with pytest.raises(grpc.RpcError) as gone:
            predict(target, "three", 2.0)
        assert gone.value.code() == grpc.StatusCode.UNAVAILABLE  # removed: known, no version available
        assert predict(target, "half", 2.0) == (1, 3.0)
    # checked and counted once, where the call came in (not once per worker)
    assert requests_total(scrape(server.url), api="reload") - reloads_before == 2


def test_concurrent_reloads_leave_every_worker_with_the_same_config(
    server: ModelServerHandle, root: Path
) -> None:
    target = server.grpc_target
    with_three, without = config_text(root, "half", "three"), config_text(root, "half")
    seen: set[tuple[tuple[int, str], ...]] = set()

    def agree() -> bool:
        # An unload may still run when OK comes back (TF Serving's reload does not wait for unloads
        # either): the workers must agree once it ends; a lasting disagreement fails at the deadline.
        see_every_worker(target, "three", seen)
        return len(seen) == 1 and all(state != "UNLOADING" for _, state in next(iter(seen)))

    for _ in range(4):  # two reloads at once, on fresh connections: often reaching different workers
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda text: reload(target, text), [with_three, without]))
        assert [r.status.error_code for r in replies] == [0, 0]
        try:
            wait_until(agree, "workers to agree after concurrent reloads")
        except WaitTimeout:
            pytest.fail(f"workers disagree after concurrent reloads: {seen}")
    assert reload(target, without).status.error_code == 0


def test_reload_failing_on_apply_fails_the_same_on_every_worker(
    server: ModelServerHandle, root: Path
) -> None:
    target = server.grpc_target
    before = requests_total(scrape(server.url), api="reload", status="FAILED_PRECONDITION")
    bad_label = (
        f'model_config_list {{ config {{ name: "half" base_path: "{root / "half"}" '
        'version_labels { key: "stable" value: 7 } } }'
    )
    with pytest.raises(grpc.RpcError) as failed:
        reload(target, bad_label)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "version 7 of model half" in (failed.value.details() or "")
    for _ in range(CONNECTIONS):
        assert status(target, "half") == [(1, "AVAILABLE")]
        assert predict(target, "half", 2.0) == (1, 3.0)
    after = requests_total(scrape(server.url), api="reload", status="FAILED_PRECONDITION")
    assert after - before == 1
    assert reload(target, config_text(root, "half")).status.error_code == 0


def test_reload_refused_where_it_comes_in_changes_no_worker(server: ModelServerHandle, root: Path) -> None:
    target = server.grpc_target
    with pytest.raises(grpc.RpcError) as no_token:
        reload(target, config_text(root, "half", "three"), token="wrong-token-0123456789")
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    outside = 'model_config_list { config { name: "half" base_path: "/usr" } }'
    with pytest.raises(grpc.RpcError) as denied:
        reload(target, outside)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "--allowed_model_base_paths" in (denied.value.details() or "")
    for _ in range(CONNECTIONS):
        assert predict(target, "half", 2.0) == (1, 3.0)
        with pytest.raises(grpc.RpcError) as absent:
            predict(target, "three", 2.0)
        assert absent.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)


def test_metrics_are_aggregated_over_workers(server: ModelServerHandle) -> None:
    before = requests_total(scrape(server.url), model="half", api="predict", protocol="rest", status="OK")
    pids = workers(server)
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(CONNECTIONS)]
    try:
        for client in clients:
            assert client.post("/v1/models/half:predict", json={"instances": [1.0]}).status_code == 200
        assert pids_with_connection(pids, server.rest_port or 0) == set(pids)  # both workers counted some
    finally:
        for client in clients:
            client.close()
    for _ in range(8):  # each scrape on a fresh connection, answered by either worker: the same totals
        samples = scrape(server.url)
        counted = requests_total(samples, model="half", api="predict", protocol="rest", status="OK")
        assert counted - before == CONNECTIONS
        assert samples[("modelserver_available_versions", (("model", "half"),))] == 1


def test_worker_that_cannot_start_fails_the_start(root: Path, tmp_path: Path) -> None:
    # a label naming a version that does not exist fails in the workers (after TensorFlow loads)
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "half" base_path: "{root / "half"}" '
        'version_labels { key: "stable" value: 7 } } }'
    )
    grpc_port, rest_port = free_ports(2)
    handle = modelserver_process(
        grpc_port=grpc_port,
        rest_port=rest_port,
        log_path=tmp_path / "server.log",
        model_config_file=config,
        extra_flags=("--num_workers=2",),
    )
    code = fails_to_start(handle)
    log = handle.log_text()
    assert code == 1, log
    last = log.strip().splitlines()[-1]
    assert re.match(
        r"modelserver: worker \d could not start: could not apply the model config at start", last
    )
    assert "version 7" in last
    assert all(gone(pid) for pid in started_pids(log))


def test_supervisor_checks_flags_and_ports_before_starting_workers(tmp_path: Path, root: Path) -> None:
    with start_modelserver(model_name="half", model_base_path=root / "half", rest=False) as other:
        handle = modelserver_process(
            grpc_port=other.grpc_port,
            rest_port=None,
            log_path=tmp_path / "server.log",
            model_name="half",
            model_base_path=root / "half",
            extra_flags=("--num_workers=2",),
        )
        assert fails_to_start(handle) == 1
        assert f"cannot listen on gRPC port {other.grpc_port}" in handle.log_text()
        assert "started 2 workers" not in handle.log_text()


def test_killed_worker_stops_the_server(root: Path, tmp_path: Path) -> None:
    with start_modelserver(
        model_name="half",
        model_base_path=root / "half",
        extra_flags=("--num_workers=2",),
        log_path=tmp_path / "s.log",
    ) as handle:
        wait_until(lambda: "all 2 workers serving" in handle.log_text(), "both workers serving")
        victim, survivor = child_pids(handle.pid)
        os.kill(victim, signal.SIGKILL)
        assert handle.process is not None
        code = handle.process.wait(60)
        log = handle.log_text()
        assert code == 1, log
        assert f"worker 0 (pid {victim}) was killed by SIGKILL" in log or (
            f"worker 1 (pid {victim}) was killed by SIGKILL" in log
        )
        assert "stopped serving" in log.strip().splitlines()[-1]
        assert gone(survivor)
        assert not wait_for_port(handle.grpc_port, 0.5)


def test_graceful_stop_leaves_no_process(root: Path, tmp_path: Path) -> None:
    handle = start_modelserver(
        model_name="half",
        model_base_path=root / "half",
        extra_flags=("--num_workers=2",),
        log_path=tmp_path / "s.log",
    )
    wait_until(lambda: "all 2 workers serving" in handle.log_text(), "both workers serving")
    pids = child_pids(handle.pid)
    assert len(pids) == 2
    assert handle.stop() == 0  # SIGTERM to the supervisor only: it forwards it
    assert all(gone(pid) for pid in pids)
    log = handle.log_text()
    assert log.count("modelserver: stopped") == 2, log


def test_workers_stop_when_the_supervisor_is_killed(root: Path, tmp_path: Path) -> None:
    handle = start_modelserver(
        model_name="half",
        model_base_path=root / "half",
        extra_flags=("--num_workers=2",),
        log_path=tmp_path / "s.log",
    )
    wait_until(lambda: "all 2 workers serving" in handle.log_text(), "both workers serving")
    pids = child_pids(handle.pid)
    handle.kill()  # SIGKILL: no chance to forward anything
    wait_until(lambda: all(gone(pid) for pid in pids), "workers to stop")
    assert "the supervisor process is gone" in handle.log_text()


def test_config_file_change_reaches_every_worker(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text(config_text(root, "half"))
    flags = ("--num_workers=2", "--model_config_file_poll_wait_seconds=1")
    with start_modelserver(config, extra_flags=flags, rest=False, log_path=tmp_path / "s.log") as handle:
        wait_until(lambda: "all 2 workers serving" in handle.log_text(), "both workers serving")
        target = handle.grpc_target
        config.write_text(config_text(root, "half", "three"))
        wait_until(
            lambda: all(status(target, "three") == [(1, "AVAILABLE")] for _ in range(CONNECTIONS)),
            "every connection to see the model added to the config file",
        )
        assert all(predict(target, "three", 2.0) == (1, 4.0) for _ in range(CONNECTIONS))
        assert handle.log_text().count("model config file") == 1  # polled by worker 0 only


def test_ram_budget_is_split_between_workers(root: Path, tmp_path: Path) -> None:
    # the version's estimate (about 28 MiB with the runtime's first-load share) fits 40 MiB, not 20 MiB
    budget = 40 << 20
    flags = ("--num_workers=2", f"--total_model_memory_limit_bytes={budget}")
    with start_modelserver(
        model_name="half",
        model_base_path=root / "half",
        extra_flags=flags,
        rest=False,
        log_path=tmp_path / "s.log",
    ) as handle:
        wait_until(lambda: "all 2 workers serving" in handle.log_text(), "both workers serving")
        assert handle.log_text().count("RAM budget for loaded versions: 20.0 MiB (1/2 of 40.0 MiB") == 2
        with grpc.insecure_channel(handle.grpc_target, options=FRESH) as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "half"
            reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
        (version,) = reply.model_version_status
        assert version.status.error_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    with start_modelserver(
        model_name="half",
        model_base_path=root / "half",
        extra_flags=(f"--total_model_memory_limit_bytes={budget}",),
        rest=False,
        log_path=tmp_path / "one.log",
    ) as one:  # the same budget with one worker: the version loads
        assert status(one.grpc_target, "half") == [(1, "AVAILABLE")]


def test_one_worker_is_the_single_process(root: Path, tmp_path: Path) -> None:
    with start_modelserver(
        model_name="half", model_base_path=root / "half", rest=False, log_path=tmp_path / "s.log"
    ) as handle:
        assert status(handle.grpc_target, "half") == [(1, "AVAILABLE")]
        assert child_pids(handle.pid) == []  # no supervisor, no worker processes
        log = handle.log_text()
        assert " worker 0 " not in log and "each worker holds every model" not in log


def test_tensorflow_threads_are_shared_between_workers(tmp_path: Path) -> None:
    """Unless the parallelism flags are set, each of N workers' sessions gets usable cores / N threads."""
    from modelserver.process.options import ServerOptions, usable_cores
    from modelserver.process.server import ModelServer
    from modelserver.process.supervisor import WorkerContext

    config = tmp_path / "models.config"
    config.write_text("model_config_list {}\n")
    options = ServerOptions(model_config_file=str(config))
    single = ModelServer(options)
    assert single._loader("m", 1, tmp_path).intra_op_threads == 0  # TensorFlow's own choice
    two = ModelServer(options, worker=WorkerContext(0, 2, tmp_path, -1))
    loader = two._loader("m", 1, tmp_path)
    assert loader.intra_op_threads == loader.inter_op_threads == max(1, usable_cores() // 2)
    pinned = ModelServer(
        ServerOptions(model_config_file=str(config), tensorflow_intra_op_parallelism=3),
        worker=WorkerContext(0, 2, tmp_path, -1),
    )
    assert pinned._loader("m", 1, tmp_path).intra_op_threads == 3


def test_a_gateway_reaches_every_worker_over_its_channels(
    server: ModelServerHandle, root: Path, tmp_path: Path
) -> None:
    # One gRPC connection lands on one worker; GATEWAY_CHANNELS_PER_SERVER connections spread over them.
    pids = workers(server)
    config = tmp_path / "models.config"
    config.write_text(config_text(root, "half"))
    env = {
        "GATEWAY_DEFAULT_MODEL_SERVER": server.grpc_target,
        "GATEWAY_MODEL_CONFIG_FILE": str(config),
        "GATEWAY_CHANNELS_PER_SERVER": str(CONNECTIONS),
    }
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        with gateway.client() as client:
            for _ in range(2 * CONNECTIONS):  # /readyz asks the model server for the model's status each time
                reply = client.get("/readyz")
                assert reply.status_code == 200, reply.text
        assert pids_with_connection(pids, server.grpc_port) == set(pids)
    finally:
        gateway.process.stop()
