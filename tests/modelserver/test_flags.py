"""Every tensorflow_model_server flag accounted for: modelserver.process.tfs_flags against TF Serving's main.cc,
``python -m modelserver --help``, docs/flags.md and the parser; and the flags this change made work."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from devtools.servers import ModelServerHandle, start_modelserver
from modelserver.errors import ConfigError
from modelserver.process.cli import parse_flags
from modelserver.process.options import parse_channel_arguments
from modelserver.process.rest_server import _rest_protocol
from modelserver.process.startup_files import read_startup_files
from modelserver.process.tfs_flags import TFS_FLAGS, flags_markdown
from modelserver.runtime.limits import DEADLINE
from tfs_protos.tensorflow.core.protobuf import config_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]

# tensorflow_serving/model_servers/main.cc at 9d981c5c, every tensorflow::Flag("...") in order.
MAIN_CC_FLAGS = [
    "port",
    "grpc_socket_path",
    "rest_api_port",
    "rest_api_num_threads",
    "rest_api_timeout_in_ms",
    "rest_api_enable_cors_support",
    "enable_batching",
    "allow_version_labels_for_unavailable_models",
    "batching_parameters_file",
    "enable_per_model_batching_parameters",
    "model_config_file",
    "model_config_file_poll_wait_seconds",
    "model_name",
    "model_base_path",
    "num_load_threads",
    "num_unload_threads",
    "max_num_load_retries",
    "load_retry_interval_micros",
    "file_system_poll_wait_seconds",
    "flush_filesystem_caches",
    "tensorflow_session_parallelism",
    "tensorflow_session_config_file",
    "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism",
    "use_alts_credentials",
    "ssl_config_file",
    "platform_config_file",
    "per_process_gpu_memory_fraction",
    "saved_model_tags",
    "grpc_channel_arguments",
    "grpc_max_threads",
    "enable_model_warmup",
    "num_request_iterations_for_warmup",
    "version",
    "monitoring_config_file",
    "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model",
    "num_tflite_pools",
    "num_tflite_interpreters_per_pool",
    "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled",
    "xla_gpu_compilation_enabled",
    "enable_profiler",
    "thread_pool_factory_config_file",
    "mixed_precision",
    "skip_initialize_tpu",
    "enable_grpc_healthcheck_service",
    "enable_serialization_as_tensor_content",
]


def test_the_table_holds_every_flag_of_main_cc_in_order() -> None:
    assert len(MAIN_CC_FLAGS) == 48
    assert list(TFS_FLAGS) == MAIN_CC_FLAGS


def test_help_walks_the_table() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "modelserver", "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    listed = dict(
        re.findall(
            r"^  --(\w+)(?:=[^:]*)?: (refused at start|implemented differently|implemented)", out, re.M
        )
    )
    words = {
        "implemented": "implemented",
        "differently": "implemented differently",
        "refused": "refused at start",
    }
    assert listed == {name: words[flag.status] for name, flag in TFS_FLAGS.items()}


def test_docs_table_is_the_table() -> None:
    text = (REPO_ROOT / "docs" / "flags.md").read_text(encoding="utf-8")
    assert text.endswith(flags_markdown())
    assert "docs/flags.md" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_implemented_flags_are_options_and_refused_ones_are_not() -> None:
    from modelserver.process.options import ServerOptions

    for name, flag in TFS_FLAGS.items():
        if name == "version":  # handled before parsing: prints the version
            continue
        assert (name in ServerOptions.model_fields) == (flag.status != "refused"), name


@pytest.mark.parametrize("name", [n for n, f in TFS_FLAGS.items() if f.status == "refused"])
def test_refused_flags_fail_at_start_unless_they_ask_for_what_is_done(name: str) -> None:
    with pytest.raises(ConfigError, match=f"--{name} is not supported by this model server: "):
        parse_flags(["--model_base_path=/m", f"--{name}=something"])
    for value in TFS_FLAGS[name].accepts:
        parse_flags(["--model_base_path=/m", f"--{name}={value}"])


def test_refused_flag_exits_with_its_reason() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "modelserver", "--model_base_path=/m", "--enable_profiler=true"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 2
    assert (
        "--enable_profiler is not supported by this model server: TensorFlow's profiler service" in run.stderr
    )


def test_grpc_channel_arguments_parse_as_tf_serving() -> None:
    # testGoodGrpcChannelArgs' value: an int32 is passed as an integer, anything else as a string
    assert parse_channel_arguments(
        "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpc.lb_policy_name"
    ) == [
        ("grpc.max_connection_age_ms", 2000),
        ("grpc.lb_policy_name", "grpc.lb_policy_name"),
    ]
    assert parse_channel_arguments("") == []
    assert parse_channel_arguments("a=4294967296") == [("a", "4294967296")]
    for bad in ("grpc.max_connection_age_ms", "=1", "a=1,,b=2", "a=b=c"):
        with pytest.raises(ConfigError, match=r"--grpc_channel_arguments: .* is not key=value"):
            parse_flags(["--model_base_path=/m", f"--grpc_channel_arguments={bad}"])


@pytest.fixture(scope="module")
def small_receive_server(
    tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerHandle]:
    root = tmp_path_factory.mktemp("channel_args")
    shutil.copytree(tiny["half_plus_two"], root / "half_plus_two" / "1")
    flags = [
        "--grpc_channel_arguments=grpc.max_receive_message_length=300,grpc.max_connection_age_ms=600000",
        "--enable_serialization_as_tensor_content=true",
    ]
    with start_modelserver(
        model_name="half_plus_two",
        model_base_path=root / "half_plus_two",
        extra_flags=flags,
        rest=False,
        log_path=root / "modelserver.log",
    ) as server:
        yield server


def _predict(address: str, values: int) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add(size=values)
    tensor.float_val.extend([1.0] * values)
    with grpc.insecure_channel(address) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)


def test_grpc_channel_arguments_reach_the_grpc_server(small_receive_server: ModelServerHandle) -> None:
    """The user's arguments are merged last: max_receive_message_length=300 wins over the server's own."""
    address = small_receive_server.grpc_target
    y = _predict(address, 4).outputs["y"]
    assert not y.float_val and struct.unpack("<4f", y.tensor_content) == (2.5,) * 4  # tensor content on
    with pytest.raises(grpc.RpcError) as failure:
        _predict(address, 200)  # 800 bytes of floats
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_rest_api_timeout_is_each_rest_call_deadline() -> None:
    seen: list[float | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(DEADLINE.get())

    before = time.monotonic()
    asyncio.run(_rest_protocol(app, 30000)({"type": "http"}, None, None))
    asyncio.run(_rest_protocol(app, 0)({"type": "http"}, None, None))
    assert seen[0] is not None and before + 30 <= seen[0] <= time.monotonic() + 30
    assert seen[1] is None


def test_session_config_file_is_read_at_start(tmp_path: Path) -> None:
    config = tmp_path / "session.config"
    config.write_text("intra_op_parallelism_threads: 2\nallow_soft_placement: true\n", encoding="utf-8")
    options = parse_flags(["--model_base_path=/m", f"--tensorflow_session_config_file={config}"])
    parsed = config_pb2.ConfigProto.FromString(read_startup_files(options).session_config)
    assert parsed.intra_op_parallelism_threads == 2 and parsed.allow_soft_placement
    config.write_text("no_such_field: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"TensorFlow session config file .* is not a valid text proto"):
        read_startup_files(options)


def test_load_retries(tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """--max_num_load_retries / --load_retry_interval_micros: a failed load is tried again, then fails."""
    from modelserver.errors import ServingError
    from modelserver.runtime import loader as loader_module
    from modelserver.runtime.loader import Loader
    from modelserver.runtime.session import Session, SessionError
    from modelserver.runtime.warmup import WarmupOptions

    real = Session.load
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Session:
        calls.append(1)
        if len(calls) <= 2:
            raise SessionError(14, "storage hiccup")  # UNAVAILABLE
        return real(*args, **kwargs)

    monkeypatch.setattr(loader_module.Session, "load", flaky)
    off = WarmupOptions(enabled=False)
    Loader("m", 1, tiny["half_plus_two"], off, max_load_retries=2).load().close()
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ServingError, match="storage hiccup"):
        Loader("m", 1, tiny["half_plus_two"], off, max_load_retries=1).load()
    assert len(calls) == 2
    options = parse_flags(
        ["--model_base_path=/m", "--max_num_load_retries=5", "--load_retry_interval_micros=-1"]
    )
    assert (options.max_num_load_retries, options.load_retry_interval_micros) == (5, -1)


def test_ssl_config_file_serves_grpc_over_tls(tiny: dict[str, Path], tmp_path: Path) -> None:
    """--ssl_config_file (TF Serving's SSLConfig): a TLS client is answered, a plaintext one is not."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    config = tmp_path / "ssl.config"
    config.write_text(
        f"server_key: {json.dumps(key.read_text())}\nserver_cert: {json.dumps(cert.read_text())}\n",
        encoding="utf-8",
    )
    shutil.copytree(tiny["half_plus_two"], tmp_path / "half_plus_two" / "1")
    with start_modelserver(
        model_name="half_plus_two",
        model_base_path=tmp_path / "half_plus_two",
        extra_flags=[f"--ssl_config_file={config}"],
        rest=False,
        log_path=tmp_path / "modelserver.log",
    ) as server:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].dtype = 1
        request.inputs["x"].tensor_shape.dim.add(size=1)
        request.inputs["x"].float_val.append(1.0)
        tls = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(server.grpc_target, tls, options=options) as channel:
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
        assert list(reply.outputs["y"].float_val) == [2.5]
        with grpc.insecure_channel(server.grpc_target) as channel, pytest.raises(grpc.RpcError):
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)


def test_ssl_config_file_needs_key_and_cert(tmp_path: Path) -> None:
    config = tmp_path / "ssl.config"
    config.write_text('server_cert: "x"\n', encoding="utf-8")
    options = parse_flags(["--model_base_path=/m", f"--ssl_config_file={config}"])
    with pytest.raises(ConfigError, match="server_key and server_cert"):
        read_startup_files(options)


def test_per_model_batching_parameters(tiny: dict[str, Path], tmp_path: Path) -> None:
    """--enable_per_model_batching_parameters: the version's batching_params.pbtxt is its batching config."""
    import numpy as np

    from modelserver.errors import InvalidArgument
    from modelserver.runtime.batching import Batcher
    from modelserver.runtime.batching_config import BatchingConfig
    from modelserver.runtime.loader import Loader
    from modelserver.runtime.warmup import WarmupOptions

    version = tmp_path / "1"
    shutil.copytree(tiny["half_plus_two"], version)
    (version / "batching_params.pbtxt").write_text("max_batch_size { value: 2 }\n", encoding="utf-8")
    off = WarmupOptions(enabled=False)
    servable = Loader("m", 1, version, off, per_model_batching=True).load()
    assert servable.batching is not None and servable.batching.max_batch_size == 2
    assert Loader("m", 1, version, off).load().batching is None  # without the flag: the server's config

    async def run(rows: int) -> Any:
        batcher = Batcher(BatchingConfig(max_batch_size=1000))
        return await batcher.run(servable, "", {"x": np.ones(rows, dtype=np.float32)})

    assert list(asyncio.run(run(2))["y"]) == [2.5, 2.5]
    with pytest.raises(InvalidArgument, match="Task size 3 is larger than maximum input batch size 2"):
        asyncio.run(run(3))
    (version / "batching_params.pbtxt").write_text("max_batch_size { value: -1 }\n", encoding="utf-8")
    with pytest.raises(InvalidArgument, match="max_batch_size must be positive"):
        Loader("m", 1, version, off, per_model_batching=True).load()
    with pytest.raises(ConfigError, match="requires --enable_batching"):
        parse_flags(["--model_base_path=/m", "--enable_per_model_batching_parameters"])


@pytest.mark.parametrize(
    ("flags", "pools"),
    [
        ([], (0, 0)),  # TensorFlow's choice
        (["--tensorflow_session_parallelism=4"], (4, 4)),
        (["--tensorflow_intra_op_parallelism=1"], (1, 0)),  # the other stays TensorFlow's choice
        (["--tensorflow_intra_op_parallelism=1", "--tensorflow_session_parallelism=4"], (1, 0)),
        (["--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=-1"], (1, -1)),
        # server.cc reads the specific flags only when one is above 0: a negative inter-op size alone is not
        (["--tensorflow_inter_op_parallelism=-1", "--tensorflow_session_parallelism=2"], (2, 2)),
    ],
)
def test_thread_pool_flags_follow_tf_servings_rule(flags: list[str], pools: tuple[int, int]) -> None:
    from modelserver.process.server import ModelServer

    assert ModelServer(parse_flags(["--model_base_path=/m", *flags]))._thread_pools() == pools


def test_all_three_thread_pool_flags_are_refused_as_tf_serving_refuses_them() -> None:
    with pytest.raises(ConfigError, match="You cannot configure all"):
        parse_flags(
            [
                "--model_base_path=/m",
                "--tensorflow_intra_op_parallelism=1",
                "--tensorflow_inter_op_parallelism=1",
                "--tensorflow_session_parallelism=1",
            ]
        )
