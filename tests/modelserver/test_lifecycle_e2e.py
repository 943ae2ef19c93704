"""End to end lifecycle on a real ``python -m modelserver`` process: hot swap under concurrent load with zero
failed requests, pinned versions and labels keep answering, corrupt versions show in status while the old
version keeps serving, HandleReloadConfigRequest, model config file polling, graceful stop. Batching end to
end is in test_server_e2e."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import model_management_pb2

from devtools.servers import start_modelserver
from devtools.tiny_models import corrupt_version, publish
from devtools.waiting import wait_until
from guard.pages import _mappings
from modelserver.runtime.loader import LOAD_NICE
from tests.modelserver.test_server_e2e import Client

pytestmark = pytest.mark.e2e


class Load:
    """Client threads sending Predict in a loop; records answers and failures."""

    def __init__(self, client: Client, **spec: Any) -> None:
        self.client, self.spec = client, spec
        self.answers: Counter[tuple[int, float]] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.client.predict("half", [2.0], **self.spec)
                self.answers[(response.model_spec.version.value, response.outputs["y"].float_val[0])] += 1
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code()}: {exc.details()}")
            time.sleep(0.002)  # steady traffic without starving the shared CPUs

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def latest_state(client: Client, model: str) -> str | None:
    """The state of the highest version, or None while the model is unknown."""
    try:
        return client.status(model)[0][1]
    except grpc.RpcError:
        return None


def stage_corrupt(source: Path, base: Path, version: int, kind: str) -> None:
    staged = corrupt_version(source, base / f".tmp-{version}-corrupt", kind)
    os.rename(staged, base / str(version))  # atomic, so the server never sees the good copy


def test_hot_swap_under_load_and_corrupt_versions(tiny: dict[str, Path], tmp_path: Path) -> None:
    base = tmp_path / "half"
    publish(tiny["half_plus_two"], base, 1)
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "half" base_path: "{base}" '
        f"model_version_policy {{ latest {{ num_versions: 2 }} }} "
        f'version_labels {{ key: "stable" value: 1 }} }} }}'
    )
    with start_modelserver(config, rest=False, log_path=tmp_path / "server.log") as server:
        client = Client(server.grpc_target)
        with (
            Load(client) as latest,
            Load(client, version=1) as pinned,
            Load(client, label="stable") as labelled,
        ):
            wait_until(lambda: sum(latest.answers.values()) > 20, "traffic before the swap")
            publish(tiny["half_plus_three"], base, 2)
            wait_until(lambda: latest.answers[(2, 4.0)] > 20, "latest requests answered by version 2")
            pinned.stop()
            labelled.stop()
            publish(tiny["half_plus_two"], base, 3)  # latest 2 = {2, 3}: version 1 is unloaded
            wait_until(lambda: client.status("half")[-1][1] == "END", "version 1 unloaded")
            wait_until(lambda: latest.answers[(3, 3.0)] > 20, "latest requests answered by version 3")
        assert latest.errors == [] and pinned.errors == [] and labelled.errors == []
        assert set(pinned.answers) == {(1, 3.0)} and set(labelled.answers) == {(1, 3.0)}
        assert {(1, 3.0), (2, 4.0), (3, 3.0)} <= set(latest.answers)
        assert [s[:2] for s in client.status("half")] == [(3, "AVAILABLE"), (2, "AVAILABLE"), (1, "END")]

        # latest 2 now aspires the broken 4 and 5: both fail, and 3 (and 2) keep serving
        stage_corrupt(tiny["half_plus_two"], base, 4, "truncated")
        stage_corrupt(tiny["half_plus_two"], base, 5, "missing_variables")
        wait_until(
            lambda: [s[1] for s in client.status("half")[:2]] == ["END", "END"], "corrupt loads to fail"
        )
        status = {s[0]: s for s in client.status("half")}
        for version in (4, 5):
            _, state, code, message = status[version]
            assert state == "END" and code != 0 and message
        assert status[3][1] == "AVAILABLE"
        assert client.predict("half", [2.0]).model_spec.version.value == 3


def test_reload_config_over_grpc(tiny: dict[str, Path], tmp_path: Path) -> None:
    publish(tiny["half_plus_two"], tmp_path / "half", 1)
    publish(tiny["half_plus_three"], tmp_path / "half", 2)
    publish(tiny["multi_input"], tmp_path / "multi", 1)
    with start_modelserver(
        model_name="half", model_base_path=tmp_path / "half", log_path=tmp_path / "server.log"
    ) as server:
        client = Client(server.grpc_target)
        assert [s[:2] for s in client.status("half")] == [(2, "AVAILABLE")]
        request = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(
            f'model_config_list {{ config {{ name: "multi" base_path: "{tmp_path / "multi"}" }} '
            f'config {{ name: "half" base_path: "{tmp_path / "half"}" '
            f"model_version_policy {{ specific {{ versions: 1 versions: 2 }} }} "
            f'version_labels {{ key: "stable" value: 1 }} }} }}',
            request.config,
        )
        assert client.models.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0
        assert [s[:2] for s in client.status("half")] == [(2, "AVAILABLE"), (1, "AVAILABLE")]
        assert client.predict("half", [2.0], label="stable").model_spec.version.value == 1
        assert client.status("multi")[0][:2] == (1, "AVAILABLE")
        # a label on a version that is not available is refused, and nothing changes
        request.config.model_config_list.config[1].version_labels["canary"] = 7
        with pytest.raises(grpc.RpcError) as info:
            client.models.HandleReloadConfigRequest(request, timeout=60)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not currently available" in (info.value.details() or "")
        # dropping half from the config unloads it
        del request.config.model_config_list.config[1]
        client.models.HandleReloadConfigRequest(request, timeout=60)
        wait_until(lambda: all(s[1] == "END" for s in client.status("half")), "half unloaded")
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/v1/models/half/versions/1").json()["model_version_status"][0]["state"] == "END"
        assert server.stop() == 0  # SIGTERM is a graceful stop
        assert "stopped" in server.log_text()


def test_a_reload_whose_client_gave_up_is_still_applied(
    tiny: dict[str, Path], model_repo: Path, tmp_path: Path
) -> None:
    """A HandleReloadConfigRequest cancelled by its client while the server loads a version (as a deadline
    does): the server finishes the load anyway and serves it (a version left LOADING for ever was the bug).
    The exported fashion model warms up for about a second (explain included), so the cancel lands mid-load."""
    publish(tiny["half_plus_two"], tmp_path / "half", 1)
    shutil.copytree(model_repo / "fashion", tmp_path / "multi")
    with start_modelserver(
        model_name="half", model_base_path=tmp_path / "half", log_path=tmp_path / "server.log"
    ) as server:
        client = Client(server.grpc_target)
        request = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(
            f'model_config_list {{ config {{ name: "half" base_path: "{tmp_path / "half"}" }} '
            f'config {{ name: "multi" base_path: "{tmp_path / "multi"}" }} }}',
            request.config,
        )
        call = client.models.HandleReloadConfigRequest.future(request)
        wait_until(lambda: "model multi: version 1 seen" in server.log_text(), "multi's load to start")
        call.cancel()
        wait_until(lambda: latest_state(client, "multi") == "AVAILABLE", "multi AVAILABLE")
        assert client.status("half")[0][:2] == (1, "AVAILABLE")
        assert client.models.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0


def test_model_config_file_polling_and_unix_socket(tiny: dict[str, Path], tmp_path: Path) -> None:
    publish(tiny["half_plus_two"], tmp_path / "half", 1)
    publish(tiny["multi_input"], tmp_path / "multi", 1)
    config = tmp_path / "models.config"

    def write_config(text: str) -> None:
        staging = tmp_path / "models.config.tmp"
        staging.write_text(text)
        os.replace(staging, config)

    half = f'config {{ name: "half" base_path: "{tmp_path / "half"}" }}'
    multi = f'config {{ name: "multi" base_path: "{tmp_path / "multi"}" }}'
    write_config(f"model_config_list {{ {half} }}")
    socket = tmp_path / "grpc.sock"
    flags = ["--model_config_file_poll_wait_seconds=1", f"--grpc_socket_path={socket}"]
    with start_modelserver(config, extra_flags=flags, rest=False, log_path=tmp_path / "server.log") as server:
        client = Client(server.grpc_target)
        assert Client(f"unix:{socket}").status("half")[0][:2] == (1, "AVAILABLE")  # the socket serves too
        write_config("improperly formatted file")  # a bad edit is logged and the last good config kept
        wait_until(lambda: "not applied" in server.log_text(), "the bad config to be reported")
        assert client.status("half")[0][:2] == (1, "AVAILABLE")
        write_config(f"model_config_list {{ {multi} }}")
        wait_until(lambda: latest_state(client, "multi") == "AVAILABLE", "multi loaded from the new config")
        wait_until(lambda: latest_state(client, "half") == "END", "half unloaded")


def test_bad_batching_file_fails_at_start(tmp_path: Path) -> None:
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size: 8")
    with pytest.raises(RuntimeError, match="not a valid text proto"):
        start_modelserver(
            model_name="half",
            model_base_path=tmp_path,
            extra_flags=["--enable_batching", f"--batching_parameters_file={params}"],
            log_path=tmp_path / "server.log",
            startup_timeout=60,
        )


@pytest.mark.parametrize(
    ("policy", "served", "v2_state"),
    [("availability_preserving", 1, "END"), ("resource_preserving", 2, "AVAILABLE")],
)
def test_aspired_version_policy_with_a_one_version_budget(
    tiny: dict[str, Path], tmp_path: Path, policy: str, served: int, v2_state: str
) -> None:
    """A RAM budget that holds one version: the default policy refuses the new version (RESOURCE_EXHAUSTED,
    v1 keeps serving); --aspired_version_policy=resource_preserving unloads v1 first, then serves v2."""
    from modelserver.runtime.loader import _RUNTIME_RAM, estimate_ram_bytes

    base = tmp_path / "half"
    publish(tiny["half_plus_two"], base, 1)
    first = estimate_ram_bytes(base / "1") + _RUNTIME_RAM  # the first load also pays the runtime set-up
    budget = first + estimate_ram_bytes(tiny["half_plus_three"]) // 2  # v1 fits, v1 and v2 do not
    flags = [
        f"--total_model_memory_limit_bytes={budget}",
        f"--aspired_version_policy={policy}",
        "--file_system_poll_wait_seconds=1",
    ]
    log = tmp_path / "server.log"
    with start_modelserver(
        model_name="half", model_base_path=base, extra_flags=flags, rest=False, log_path=log
    ) as server:
        client = Client(server.grpc_target)
        publish(tiny["half_plus_three"], base, 2)

        def settled() -> bool:  # version 2 refused or serving, and version 1 serving or unloaded
            states = {s[0]: s[1] for s in client.status("half")}
            return states.get(2) in ("END", "AVAILABLE") and states.get(1) in ("END", "AVAILABLE")

        wait_until(settled, "both versions to settle")
        status = {s[0]: s for s in client.status("half")}
        assert status[2][1] == v2_state, status
        assert status[1][1] == ("AVAILABLE" if served == 1 else "END"), status
        if v2_state == "END":
            assert "Insufficient resources" in status[2][3]
        assert client.predict("half", [2.0]).model_spec.version.value == served


def _niceness(pid: int) -> dict[int, int]:
    """Thread id -> niceness of every thread of ``pid`` (field 19 of /proc/<pid>/task/<tid>/stat)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        found[int(task.name)] = int(stat.rsplit(")", 1)[1].split()[16])
    return found


@pytest.mark.parametrize(
    ("flags", "niced_threads"),
    [
        ((), 1),  # the manager's one thread: v2's load, then v1's unload
        (("--num_load_threads=2",), 2),  # the pool thread that loaded v2; the manager thread that unloaded v1
    ],
)
def test_later_loads_run_niced_and_inference_threads_do_not(
    tiny: dict[str, Path], tmp_path: Path, flags: tuple[str, ...], niced_threads: int
) -> None:
    base = tmp_path / "half"
    publish(tiny["half_plus_two"], base, 1)
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "half" base_path: "{base}" }} }}')
    with start_modelserver(config, extra_flags=flags, rest=False, log_path=tmp_path / "server.log") as server:
        client = Client(server.grpc_target)
        assert client.predict("half", [2.0]).outputs["y"].float_val[0] == 3.0
        pid = server.process.pid
        # the first load made TensorFlow's thread pools: nothing runs niced
        assert set(_niceness(pid).values()) == {0}
        publish(tiny["half_plus_three"], base, 2)
        wait_until(lambda: client.status("half")[0][:2] == (2, "AVAILABLE"), "version 2 loaded")
        wait_until(lambda: client.status("half")[-1][1] == "END", "version 1 unloaded")
        for _ in range(20):  # inference on the new version, through the shared pools
            assert client.predict("half", [2.0]).outputs["y"].float_val[0] == 4.0
        niced = [nice for nice in _niceness(pid).values() if nice != 0]
        assert niced == [LOAD_NICE] * niced_threads  # the load and unload threads alone


def test_tensorflow_pages_only_start_up_used_are_released(tiny: dict[str, Path], tmp_path: Path) -> None:
    # Registering TensorFlow's ops and kernels touches ~300 MiB of its libraries that serving never reads
    # again (guard.pages); after start and after each load they are no longer resident, and serving pages
    # fault back in as needed.
    base = tmp_path / "half"
    publish(tiny["half_plus_two"], base, 1)
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "half" base_path: "{base}" }} }}')
    with start_modelserver(config, rest=False, log_path=tmp_path / "server.log") as server:
        client = Client(server.grpc_target)
        wait_until(lambda: latest_state(client, "half") == "AVAILABLE", "version 1 loaded")
        smaps = f"/proc/{server.process.pid}/smaps"
        resident = sum(rss for _, _, rss in _mappings(b"libtensorflow", smaps))
        assert resident < 64 * 2**20, f"{resident / 2**20:.0f} MiB of TensorFlow's read-only pages resident"
        publish(tiny["half_plus_three"], base, 2)  # a later load releases what it touched too
        wait_until(lambda: client.status("half")[0][:2] == (2, "AVAILABLE"), "version 2 loaded")
        for _ in range(50):
            assert client.predict("half", [2.0]).outputs["y"].float_val[0] == 4.0
        resident = sum(rss for _, _, rss in _mappings(b"libtensorflow", smaps))
        assert resident < 64 * 2**20, f"{resident / 2**20:.0f} MiB of TensorFlow's read-only pages resident"
