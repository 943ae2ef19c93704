"""Request logging (``logging_config`` in models.config; modelserver.observe): the config, the rotated and
bounded TFRecord files, the bounded queue, and a real modelserver logging every protocol - sampling rate
within the binomial spread, records read back by TensorFlow's reader and replayed as warm-up, and a full
disk (a tiny tmpfs) costing no request."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from devtools import tiny_models
from devtools.servers import ModelServerHandle, start_modelserver
from modelserver.errors import ConfigError
from modelserver.lifecycle.model_config import RequestLogging, model_entries, parse_model_config
from modelserver.observe.log_files import FileLimits, RecordFiles
from modelserver.observe.request_log import RequestLog
from modelserver.runtime.tfrecord import read_records
from tfs_protos.tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

MONITORING = 'prometheus_config { enable: true, path: "/metrics" }'


def model_config(*models: tuple[str, Path, float, Path]) -> str:
    return (
        "model_config_list {\n"
        + "".join(
            f"  config {{ name: '{name}' base_path: '{base}' model_platform: 'tensorflow'\n"
            f"    logging_config {{ sampling_config {{ sampling_rate: {rate} }}\n"
            f"      log_collector_config {{ filename_prefix: '{prefix}' }} }} }}\n"
            for name, base, rate, prefix in models
        )
        + "}\n"
    )


def finished(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}-*.tfrecord"))


def records(files: list[Path]) -> list[prediction_log_pb2.PredictionLog]:
    return [
        prediction_log_pb2.PredictionLog.FromString(raw)
        for path in files
        for raw in read_records(path, max_records=10_000)
    ]


# ---- config -------------------------------------------------------------------------------------------
def test_logging_config_is_carried_by_the_model_entry(tmp_path: Path) -> None:
    text = model_config(("half", Path("/models/half"), 0.25, Path("logs/half")))
    (entry,) = model_entries(parse_model_config(text), base_dir=tmp_path).values()
    assert entry.logging == RequestLogging(0.25, tmp_path / "logs" / "half")
    no_logging = "model_config_list { config { name: 'a' base_path: '/m' } }"
    assert model_entries(parse_model_config(no_logging))["a"].logging is None


@pytest.mark.parametrize(
    ("logging_config", "message"),
    [
        ("sampling_config { sampling_rate: 1.5 } log_collector_config { filename_prefix: '/l' }", "within"),
        ("sampling_config { sampling_rate: 0.5 }", "filename_prefix"),
        (
            "sampling_config { sampling_rate: 0.5 } log_collector_config { type: 'x' filename_prefix: '/l' }",
            "type",
        ),
    ],
)
def test_bad_logging_config_is_refused(logging_config: str, message: str) -> None:
    text = f"model_config_list {{ config {{ name: 'a' base_path: '/m' logging_config {{ {logging_config} }} }} }}"
    with pytest.raises(ConfigError, match=message):
        model_entries(parse_model_config(text))


# ---- files and queue ------------------------------------------------------------------------------------
def test_files_rotate_by_records_size_and_age_and_stay_bounded(tmp_path: Path) -> None:
    now = [0.0]
    files = RecordFiles(
        tmp_path / "log", FileLimits(max_file_records=3, max_file_age_seconds=10), lambda: now[0]
    )
    for index in range(7):
        files.append(b"record %d" % index)
    files.close()
    names = finished(tmp_path, "log")
    assert [len(list(read_records(path, max_records=10))) for path in names] == [3, 3, 1]
    assert [raw for path in names for raw in read_records(path, max_records=10)] == [
        b"record %d" % index for index in range(7)
    ]
    files.append(b"old")
    now[0] = 10.0
    files.tick()  # 10 s old: finished without a new record
    assert len(finished(tmp_path, "log")) == 4 and not list(tmp_path.glob("*.active"))

    bounded = RecordFiles(tmp_path / "small", FileLimits(max_file_bytes=100, max_total_bytes=250))
    for _ in range(20):
        bounded.append(b"x" * 40)  # 56 bytes framed: one file per record
    bounded.close()
    kept = finished(tmp_path, "small")
    assert sum(path.stat().st_size for path in kept) <= 250 and len(kept) == 4  # the newest four


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    log = RequestLog(FileLimits(), queue_size=2, registry=registry, start=False)
    logging = RequestLogging(1.0, tmp_path / "q")
    spec = model_pb2.ModelSpec(name="m")
    for _ in range(5):  # nothing drains the queue yet: 2 queued, 3 dropped at once
        log.submit(logging, "m", spec, prediction_log_pb2.PredictionLog)
    assert (
        registry.get_sample_value(
            "modelserver_request_log_dropped_total", {"model": "m", "reason": "queue_full"}
        )
        == 3
    )
    log.start()
    log.close()
    assert len(records(finished(tmp_path, "q"))) == 2


# ---- a real modelserver ---------------------------------------------------------------------------------
def metric(server: ModelServerHandle, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            total += float(match.group(2))
    return total


def float_request(model: str, values: list[float]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model))
    tensor = request.inputs["x"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add(size=len(values))
    tensor.float_val.extend(values)
    return request


def example_input(message: type, model: str, signature: str) -> object:
    request = message(model_spec=model_pb2.ModelSpec(name=model, signature_name=signature))
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(4.0)
    return request


@pytest.fixture
def logged_server(tiny: dict[str, Path], tmp_path: Path) -> Iterator[tuple[ModelServerHandle, Path]]:
    base = tmp_path / "half"
    tiny_models.publish(tiny["half_plus_two"], base, 1)
    logs = tmp_path / "logs"
    config = tmp_path / "models.config"
    config.write_text(model_config(("half", base, 0.3, logs / "half"), ("all", base, 1.0, logs / "all")))
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(MONITORING)
    with start_modelserver(config, extra_flags=[f"--monitoring_config_file={monitoring}"]) as server:
        yield server, logs  # type: ignore[misc]


@pytest.mark.e2e
@pytest.mark.slow
def test_sampled_requests_of_every_protocol_are_logged_and_replay_as_warmup(
    logged_server: tuple[ModelServerHandle, Path], tiny: dict[str, Path], tmp_path: Path
) -> None:
    """1000 requests at rate 0.3 (600 gRPC, 300 REST, 100 OIP): 300 expected, sigma 14.5; the figure
    measured is asserted within 4 sigma. Model ``all`` (rate 1) logs each API once per protocol."""
    server, logs = logged_server
    with grpc.insecure_channel(server.grpc_target) as channel, httpx.Client(base_url=server.url) as http:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for index in range(600):
            stub.Predict(float_request("half", [float(index)]), timeout=30)
        for index in range(300):
            assert http.post("/v1/models/half:predict", json={"instances": [float(index)]}).status_code == 200
        oip = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        for _ in range(100):
            assert http.post("/v2/models/half/infer", json=oip).status_code == 200
        # model "all": every API and protocol once
        stub.Predict(float_request("all", [1.0, 2.0]), timeout=30)
        assert http.post("/v1/models/all:predict", json={"instances": [3.0]}).status_code == 200
        assert http.post("/v2/models/all/infer", json=oip).status_code == 200
        stub.Classify(
            example_input(classification_pb2.ClassificationRequest, "all", "classify_x_to_y"), timeout=30
        )
        stub.Regress(example_input(regression_pb2.RegressionRequest, "all", "regress_x_to_y"), timeout=30)
        multi = inference_pb2.MultiInferenceRequest()
        multi.input.example_list.examples.add().features.feature["x"].float_list.value.append(4.0)
        for signature, method in (
            ("classify_x_to_y", tiny_models.CLASSIFY_METHOD),
            ("regress_x_to_y", tiny_models.REGRESS_METHOD),
        ):
            task = multi.tasks.add(method_name=method)
            task.model_spec.name, task.model_spec.signature_name = "all", signature
        stub.MultiInference(multi, timeout=30)
        assert metric(server, "modelserver_request_log_dropped_total", model="half", reason="queue_full") == 0
    assert server.stop() == 0  # SIGTERM: the writer drains and finishes its files

    half = records(finished(logs, "half"))
    expected, sigma = 300, math.sqrt(1000 * 0.3 * 0.7)
    print(f"rate 0.3 over 1000 requests: {len(half)} logged (expected {expected}, sigma {sigma:.1f})")
    assert abs(len(half) - expected) <= 4 * sigma
    assert {record.log_metadata.model_spec.name for record in half} == {"half"}
    assert {round(record.log_metadata.sampling_config.sampling_rate, 6) for record in half} == {0.3}
    for record in half:
        (x,) = record.predict_log.request.inputs["x"].float_val or np.frombuffer(
            record.predict_log.request.inputs["x"].tensor_content, np.float32
        )
        (y,) = record.predict_log.response.outputs["y"].float_val or np.frombuffer(
            record.predict_log.response.outputs["y"].tensor_content, np.float32
        )
        assert y == pytest.approx(0.5 * x + 2.0)

    all_files = finished(logs, "all")
    kinds = sorted(record.WhichOneof("log_type") for record in records(all_files))
    assert kinds == [
        "classify_log",
        "multi_inference_log",
        "predict_log",
        "predict_log",
        "predict_log",
        "regress_log",
    ]
    assert_tensorflow_reads_and_replays(all_files, tiny, tmp_path)


def assert_tensorflow_reads_and_replays(files: list[Path], tiny: dict[str, Path], tmp_path: Path) -> None:
    """TensorFlow's own reader parses the files; one copied in as a version's warm-up file is replayed by
    the real warm-up code (modelserver.runtime.warmup) - every record, unchanged."""
    import tensorflow as tf

    from modelserver.runtime.loader import Loader
    from modelserver.runtime.warmup import WarmupOptions, replay_warmup

    raw = [bytes(item.numpy()) for item in tf.data.TFRecordDataset([str(path) for path in files])]
    assert [prediction_log_pb2.PredictionLog.FromString(item) for item in raw] == records(files)
    (single,) = files  # six records: one file
    version = shutil.copytree(tiny["half_plus_two"], tmp_path / "warm" / "1")
    (version / "assets.extra").mkdir()
    shutil.copyfile(single, version / "assets.extra" / "tf_serving_warmup_requests")
    servable = Loader("all", 1, version, WarmupOptions(enabled=False)).load()
    try:
        assert replay_warmup(servable, WarmupOptions()) == 6
    finally:
        Loader.unload(servable)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted for the test (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_full_disk_costs_no_request_and_counts_the_drops(
    tiny: dict[str, Path], tmp_path: Path, tiny_disk: Path
) -> None:
    """Every request logged (rate 1) to a 64 KiB disk: ~2 KiB records fill it after about 30; all 400
    requests still succeed, and the records the disk refused are counted."""
    base = tmp_path / "half"
    tiny_models.publish(tiny["half_plus_two"], base, 1)
    config = tmp_path / "models.config"
    config.write_text(model_config(("half", base, 1.0, tiny_disk / "half")))
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(MONITORING)
    values = [float(index) for index in range(250)]
    with start_modelserver(config, extra_flags=[f"--monitoring_config_file={monitoring}"]) as server:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            failed = 0
            for _ in range(400):
                try:
                    stub.Predict(float_request("half", values), timeout=30)
                except grpc.RpcError:
                    failed += 1
        server.wait_until(
            lambda: (
                metric(server, "modelserver_request_log_records_total", model="half")
                + metric(server, "modelserver_request_log_dropped_total", model="half", reason="write_error")
                + metric(server, "modelserver_request_log_dropped_total", model="half", reason="queue_full")
                >= 400
            ),
            60,
            "every record written or dropped",
        )
        written = metric(server, "modelserver_request_log_records_total", model="half")
        dropped = metric(server, "modelserver_request_log_dropped_total", model="half", reason="write_error")
        print(f"64 KiB disk, 400 requests: {failed} failed, {written:.0f} logged, {dropped:.0f} dropped")
        assert failed == 0 and dropped > 0 and written > 0
