"""One request, one version (modelserver.dataplane.prediction, modelserver.runtime.execution): a hot swap that lands
after a request was resolved and parsed, and before its signature runs, does not change the version that
answers it - over TF Serving's gRPC and REST APIs and the Open Inference Protocol alike.

The swap is driven in order, not by timing: the real data plane, whose runner first performs the
swap (version 2 loads, version 1 is retired and waits for its last handle) and then runs the signature on
the servable the request holds. Had the request resolved its version twice (parse, then run), version 2
(half_plus_three) would answer instead of version 1 (half_plus_two)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2

from devtools.tiny_models import publish
from modelserver.dataplane import DataPlane
from modelserver.lifecycle.core import ServerCore
from modelserver.lifecycle.harness import HarnessState
from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.model_config import ModelEntry
from modelserver.lifecycle.version_policy import LatestVersions
from modelserver.metrics import Metrics
from modelserver.protocols.oip.service import InferRequest, OipDataPlane, Tensor
from modelserver.protocols.tfs.rest import create_rest_app
from modelserver.runtime.loader import Loader
from modelserver.runtime.runner import Runner
from modelserver.runtime.servable import Servable
from modelserver.runtime.warmup import WarmupOptions

X = [1.0, 2.0]
V1 = [2.5, 3.0]  # half_plus_two: x / 2 + 2
V2 = [3.5, 4.0]  # half_plus_three: x / 2 + 3


class SwapBeforeRun(Runner):
    """The real runner; ``swap`` (when set) runs once, between a request's parse and its run."""

    swap: Callable[[], Awaitable[None]] | None = None
    swapped = False

    async def run(
        self,
        servable: Servable,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...],
    ) -> dict[str, np.ndarray]:
        if self.swap is not None:
            swap, self.swap = self.swap, None
            await swap()
            self.swapped = True
        return await super().run(servable, signature, inputs, output_filter)


def predict_request(values: list[float]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="half"))
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(values, np.float32)))
    return request


async def grpc_predict(dp: DataPlane) -> tuple[list[float], int | None]:
    response = await dp.predict(predict_request(X))
    return list(response.outputs["y"].float_val), response.model_spec.version.value


async def rest_predict(dp: DataPlane) -> tuple[list[float], int | None]:
    transport = httpx.ASGITransport(app=create_rest_app(dp))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        reply = await client.post("/v1/models/half:predict", json={"instances": X})
    assert reply.status_code == 200, reply.text
    return reply.json()["predictions"], None  # TF Serving's REST predict does not name the version


async def oip_infer(dp: DataPlane) -> tuple[list[float], int | None]:
    x = np.asarray(X, np.float32)
    request = InferRequest(model_name="half", inputs=[Tensor("x", "FP32", x.shape, x)])
    response = await OipDataPlane(dp).infer(request)
    return response.outputs[0].array.tolist(), int(response.model_version)


PROTOCOLS = {"grpc": grpc_predict, "rest": rest_predict, "oip": oip_infer}


async def _serve_half(
    base: Path, metrics: Metrics, runner: Runner | None = None
) -> tuple[AspiredVersionsManager, ServerCore, DataPlane]:
    """A server core serving the latest version of ``half`` under ``base``, and its data plane."""
    manager = AspiredVersionsManager(
        lambda n, v, p: Loader(n, v, p, WarmupOptions()), ram_budget_bytes=2**33, metrics=metrics
    )
    core = ServerCore(manager, file_system_poll_wait_seconds=0)
    dp = DataPlane(core, metrics=metrics, runner=runner)
    await core.apply_config({"half": ModelEntry("half", base, LatestVersions(1))})
    return manager, core, dp


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_swap_between_parse_and_run_does_not_change_the_answering_version(
    tiny: dict[str, Path], tmp_path: Path, protocol: str
) -> None:
    call = PROTOCOLS[protocol]
    base = tmp_path / "half"
    publish(tiny["half_plus_two"], base, 1)
    metrics = Metrics()

    async def main() -> None:
        runner = SwapBeforeRun()
        manager, core, dp = await _serve_half(base, metrics, runner)

        async def swap() -> None:
            publish(tiny["half_plus_three"], base, 2)
            await core.source.poll_once()  # latest 1: version 2 loads, then version 1 is retired
            assert manager.available_versions("half") == [2]
            (v1,) = manager.status("half", 1)
            assert v1.harness_state is HarnessState.QUIESCING  # the request's handle keeps it loaded

        runner.swap = swap
        try:
            outputs, version = await call(dp)
            assert runner.swapped  # the swap did happen between parse and run
            assert outputs == V1 and version in (1, None)
            await manager.wait_unloads()  # released with the reply: version 1 unloads now
            (v1,) = manager.status("half", 1)
            assert v1.harness_state is HarnessState.DISABLED
            outputs, version = await call(dp)  # the next request resolves to version 2
            assert outputs == V2 and version in (2, None)
        finally:
            await core.stop()
            dp.shutdown()

    asyncio.run(main())
    count = metrics.registry.get_sample_value
    labels = {"model": "half", "signature": "serving_default", "api": "predict", "status": "OK"}
    protocol_label = "grpc"  # in process, no adapter sets another label
    assert count("modelserver_requests_total", {**labels, "version": "1", "protocol": protocol_label}) == 1
    assert count("modelserver_requests_total", {**labels, "version": "2", "protocol": protocol_label}) == 1


def test_a_request_counts_once_and_errors_raised_while_parsing_are_counted(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """REST parses inside the held version: a JSON tensor the signature refuses is a counted predict call
    (INVALID_ARGUMENT, version 1), as the same mistake over gRPC is."""
    base = tmp_path / "half"
    publish(tiny["half_plus_two"], base, 1)
    metrics = Metrics()

    async def main() -> None:
        _, core, dp = await _serve_half(base, metrics)
        try:
            transport = httpx.ASGITransport(app=create_rest_app(dp))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                reply = await client.post("/v1/models/half:predict", json={"instances": ["a"]})
                assert reply.status_code == 400
                assert "is not of expected type: float" in reply.json()["error"]
                reply = await client.post("/v1/models/half:predict", json={"instances": X})
                assert reply.json() == {"predictions": V1}
        finally:
            await core.stop()
            dp.shutdown()

    asyncio.run(main())
    count = metrics.registry.get_sample_value
    labels = {"model": "half", "version": "1", "signature": "serving_default", "api": "predict"}
    assert (
        count("modelserver_requests_total", {**labels, "protocol": "grpc", "status": "INVALID_ARGUMENT"}) == 1
    )
    assert count("modelserver_requests_total", {**labels, "protocol": "grpc", "status": "OK"}) == 1
