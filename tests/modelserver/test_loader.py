"""modelserver.runtime.loader and modelserver.runtime.warmup: estimate, load, warm-up replay, corrupt versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from devtools import tiny_models
from modelserver.errors import InvalidArgument, ServingError
from modelserver.runtime.loader import Loader, estimate_ram_bytes
from modelserver.runtime.servable import check_inputs
from modelserver.runtime.warmup import MAX_WARMUP_RECORDS, WarmupOptions
from tfs_protos.tensorflow.core.framework import types_pb2
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2


def test_loads_half_plus_two_with_signatures_and_method_names(tiny: dict[str, Path]) -> None:
    loader = Loader("half", 1, tiny["half_plus_two"], WarmupOptions())
    estimate = loader.estimate_ram_bytes()
    servable = loader.load()
    assert set(servable.signature_defs) >= {"serving_default", "classify_x_to_y", "regress_x_to_y"}
    assert servable.signature_defs["classify_x_to_y"].method_name == "tensorflow/serving/classify"
    outputs = servable.run("", {"x": np.array([1.0, 2.0, 5.0], np.float32)})
    np.testing.assert_array_equal(outputs["y"], [2.5, 3.0, 4.5])
    assert servable.ram_bytes == estimate >= estimate_ram_bytes(tiny["half_plus_two"]) > 0
    # The runtime's one-time set-up is counted for the first load in a process only.
    again = Loader("half", 2, tiny["half_plus_two"], WarmupOptions())
    assert again.estimate_ram_bytes() == estimate_ram_bytes(tiny["half_plus_two"])


def test_the_warm_up_cost_is_measured_and_counted_for_the_next_version(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """The files cannot show what a warm-up replay leaves in RSS (an explain signature's gradient executor
    and activations): the load re-estimates with it measured, and the model's next version adds it up front."""
    from modelserver.runtime import loader as loader_module

    first = shutil.copytree(tiny["half_plus_two"], tmp_path / "1")
    tiny_models.write_warmup(first, [tiny_models.predict_log({"x": [1.0, 2.0]})] * 3)
    loader = Loader("warmed", 1, first, WarmupOptions())
    estimate = loader.estimate_ram_bytes()
    servable = loader.load()
    kept = loader_module._warmup_ram["warmed"]
    assert kept >= 0 and servable.ram_bytes == estimate + kept
    second = shutil.copytree(first, tmp_path / "2")
    assert (
        Loader("warmed", 2, second, WarmupOptions()).estimate_ram_bytes() == estimate_ram_bytes(second) + kept
    )
    # nothing to replay (no warm-up file, or warm-up off): nothing added
    plain = tiny["half_plus_two"]
    assert Loader("warmed", 3, plain, WarmupOptions()).estimate_ram_bytes() == estimate_ram_bytes(plain)
    off = Loader("warmed", 4, second, WarmupOptions(enabled=False))
    assert off.estimate_ram_bytes() == estimate_ram_bytes(second)


def test_a_later_load_restores_and_warms_up_in_the_calling_thread(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the process's first load (a hot swap), the restore and every warm-up run execute their ops in
    the loader's own niced thread (RunOptions.inter_op_thread_pool -1, which TensorFlow accepts), not on the
    inter-op pool serving shares; the loaded version then serves from that pool as usual."""
    from modelserver.runtime import loader as loader_module
    from modelserver.runtime.session import IN_CALLING_THREAD, Session

    seen: list[tuple[str, bool]] = []
    real_load, real_run = Session.load.__func__, Session.run  # type: ignore[attr-defined]

    def load(cls: type[Session], *args: object, **kwargs: object) -> Session:
        seen.append(("load", IN_CALLING_THREAD.get()))
        return real_load(cls, *args, **kwargs)  # type: ignore[no-any-return]

    def run(self: Session, *args: object, **kwargs: object) -> object:
        seen.append(("run", IN_CALLING_THREAD.get()))
        return real_run(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "load", classmethod(load))
    monkeypatch.setattr(Session, "run", run)
    version = shutil.copytree(tiny["half_plus_two"], tmp_path / "1")
    tiny_models.write_warmup(version, [tiny_models.predict_log({"x": [1.0, 2.0]})] * 2)
    monkeypatch.setattr(loader_module, "_runtime_loaded", False)
    Loader("half", 1, version, WarmupOptions()).load()  # the process's first: TensorFlow's pools, as usual
    assert seen == [("load", False), ("run", False), ("run", False)]
    seen.clear()
    monkeypatch.setattr(loader_module, "background_thread", lambda: None)  # keep the test thread's niceness
    servable = Loader("half", 2, version, WarmupOptions()).load()
    assert seen == [("load", True), ("run", True), ("run", True)]
    seen.clear()
    outputs = servable.run("", {"x": np.array([1.0, 2.0, 5.0], np.float32)})
    np.testing.assert_array_equal(outputs["y"], [2.5, 3.0, 4.5])
    assert seen == [("run", False)] and not IN_CALLING_THREAD.get()


def test_warmup_replays_every_record(tiny: dict[str, Path], tmp_path: Path) -> None:
    version = shutil.copytree(tiny["half_plus_two"], tmp_path / "1")
    tiny_models.write_warmup(version, [tiny_models.predict_log({"x": [1.0, 2.0]})] * 3)
    from modelserver.runtime import warmup

    servable = Loader("half", 1, version, WarmupOptions(enabled=False)).load()
    assert warmup.replay_warmup(servable, WarmupOptions(num_request_iterations=2)) == 6
    Loader("half", 1, version, WarmupOptions()).load()  # warm-up on: loads fine


def test_more_than_1000_warmup_records_fail_the_load(tiny: dict[str, Path], tmp_path: Path) -> None:
    version = shutil.copytree(tiny["half_plus_two"], tmp_path / "1")
    tiny_models.write_warmup(version, [tiny_models.predict_log({"x": [1.0]})] * (MAX_WARMUP_RECORDS + 1))
    with pytest.raises(InvalidArgument, match="exceeds the maximum"):
        Loader("half", 1, version, WarmupOptions()).load()
    Loader("half", 1, version, WarmupOptions(enabled=False)).load()  # --enable_model_warmup=false skips it


def test_failing_warmup_request_fails_the_load(tiny: dict[str, Path], tmp_path: Path) -> None:
    version = shutil.copytree(tiny["half_plus_two"], tmp_path / "1")
    tiny_models.write_warmup(version, [tiny_models.predict_log({"wrong": [1.0]})])
    with pytest.raises(ServingError, match=r"Warmup request 0 .* Missing but required: {x}") as info:
        Loader("half", 1, version, WarmupOptions()).load()
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("kind", ["truncated", "missing_variables"])
def test_corrupt_version_fails_with_a_clear_error(tiny: dict[str, Path], tmp_path: Path, kind: str) -> None:
    version = tiny_models.corrupt_version(tiny["half_plus_two"], tmp_path / "2", kind)
    with pytest.raises(ServingError) as info:
        Loader("half", 2, version, WarmupOptions()).load()
    assert info.value.code != grpc.StatusCode.OK
    assert info.value.message


def test_the_graph_decides_shapes_and_its_error_is_invalid_argument(tiny: dict[str, Path]) -> None:
    """No Python-side shape check (TF Serving's predict_util.cc): shapes the graph accepts answer, shapes it
    rejects give TensorFlow's own INVALID_ARGUMENT."""
    half = Loader("half", 1, tiny["half_plus_two"], WarmupOptions()).load()
    outputs = half.run("", {"x": np.array([[2.0, 4.0]], np.float32)})  # declared [-1]
    np.testing.assert_array_equal(outputs["y"], [[3.0, 4.0]])
    multi = Loader("multi", 1, tiny["multi_input"], WarmupOptions()).load()
    with pytest.raises(ServingError) as info:  # reduce_sum(axis=1) of a rank-1 `a`
        multi.run("", {"a": np.array([1.0, 2.0], np.float32), "b": np.array([1.0], np.float32)})
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "axis" in info.value.message.lower() or "dimension" in info.value.message.lower()
    Loader.unload(half)
    Loader.unload(multi)


def test_unload_closes_the_session(tiny: dict[str, Path]) -> None:
    servable = Loader("half", 1, tiny["half_plus_two"], WarmupOptions()).load()
    Loader.unload(servable)
    with pytest.raises(ServingError) as info:
        servable.run("", {"x": np.array([1.0], np.float32)})
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_strings_round_trip_through_the_session(tiny: dict[str, Path]) -> None:
    servable = Loader("strings", 1, tiny["strings"], WarmupOptions()).load()
    long = "x" * 100  # longer than TF_TString's inline capacity: heap-allocated element
    text = np.array([b"ab", "caf\u00e9".encode(), long.encode(), b""], dtype=object)
    outputs = servable.run("", {"text": text})
    assert outputs["length"].tolist() == [2, 5, 100, 0]
    assert outputs["upper_bytes"].tolist() == [b"AB", "CAF\u00e9".encode(), long.upper().encode(), b""]
    Loader.unload(servable)


def _signature(**inputs: list[int]) -> meta_graph_pb2.SignatureDef:
    signature = meta_graph_pb2.SignatureDef()
    for name, dims in inputs.items():
        info = signature.inputs[name]
        info.dtype = types_pb2.DT_FLOAT
        for size in dims:
            info.tensor_shape.dim.add(size=size)
    return signature


@pytest.mark.parametrize(
    "shape",
    [(784,), (1, 784), (28, 28, 1), (2, 28, 28), (1, 28, 28, 2), (1, 1, 1, 1), (1, 28, 28, 1, 1), (0,)],
)
def test_inputs_declared_rank_3_or_more_must_match_the_declared_shape(shape: tuple[int, ...]) -> None:
    """Images and sequences: TensorFlow's conv/pooling kernels abort the process on another rank, so such
    an input is refused before it reaches the graph (found by reliability/fuzz.py against fashion)."""
    signature = _signature(image=[-1, 28, 28, 1])
    with pytest.raises(InvalidArgument, match=r"has shape .* but the signature declares \[-1, 28, 28, 1\]"):
        check_inputs("serving_default", signature, {"image": np.zeros(shape, np.float32)})
    check_inputs("serving_default", signature, {"image": np.zeros((3, 28, 28, 1), np.float32)})
    check_inputs("serving_default", signature, {"image": np.zeros((0, 28, 28, 1), np.float32)})


def test_lower_ranks_are_left_to_the_graph_as_tf_serving_does() -> None:
    signature = _signature(x=[-1, 1], y=[-1])  # testPredictREST: [3] fed to x declared [-1, 1]
    check_inputs(
        "serving_default", signature, {"x": np.zeros(3, np.float32), "y": np.zeros((2, 2), np.float32)}
    )


def test_thread_pool_sizes_replace_the_session_config_files_and_a_negative_inter_op_runs_in_the_caller(
    tiny: dict[str, Path],
) -> None:
    """TF Serving's server.cc sets both pool sizes on every session config, whatever a
    --tensorflow_session_config_file says (0: TensorFlow's choice); a negative inter-op size is TensorFlow's
    "every op in the caller's thread", and the C++ loader loads and runs a model with it."""
    from modelserver.runtime.session import _config_proto
    from tfs_protos.tensorflow.core.protobuf import config_pb2

    from_file = config_pb2.ConfigProto(
        intra_op_parallelism_threads=2, inter_op_parallelism_threads=3, allow_soft_placement=True
    ).SerializeToString()
    merged = config_pb2.ConfigProto.FromString(from_file + _config_proto(0, 0))
    assert (merged.intra_op_parallelism_threads, merged.inter_op_parallelism_threads) == (0, 0)
    assert merged.allow_soft_placement  # the rest of the file stays
    caller = config_pb2.ConfigProto.FromString(_config_proto(1, -1))
    assert (caller.intra_op_parallelism_threads, caller.inter_op_parallelism_threads) == (1, -1)

    servable = Loader(
        "half", 1, tiny["half_plus_two"], WarmupOptions(), intra_op_threads=1, inter_op_threads=-1
    ).load()
    outputs = servable.run("", {"x": np.array([2.0, 4.0], np.float32)})
    np.testing.assert_array_equal(outputs["y"], [3.0, 4.0])
    Loader.unload(servable)
