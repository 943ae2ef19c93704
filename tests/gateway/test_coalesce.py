"""gateway.upstream.coalesce: concurrent Predicts share one upstream call and each caller gets exactly its own rows.

Unit tests drive ``Coalescer`` with a scripted ``send``; the client tests go through real gRPC to the fake TF
Serving (``half``: y = 0.5 x + 2), and a gateway app on it answers concurrent requests with one Predict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import grpc
import httpx
import pytest

from gateway.app import create_app
from gateway.errors import UpstreamError
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream.client import ModelClient
from gateway.upstream.coalesce import Coalescer, batchable
from gateway.upstream.tensors import float_tensor, string_tensor, to_list
from tests.support.fake_modelserver import FakeModelServer
from tfs_protos.tensorflow.core.framework import tensor_pb2, types_pb2
from tfs_protos.tensorflow_serving.apis import predict_pb2

Tensors = Mapping[str, tensor_pb2.TensorProto]


class Upstream:
    """A scripted model: ``y`` = 2 x per value, ``label`` = the texts upper-cased, ``n`` = the row count
    (``[1]``: not split by rows) when ``summary`` is set; ``sent`` records every call's row count."""

    def __init__(self, *, packed: bool = True, summary: bool = False, fail: bool = False) -> None:
        self.packed, self.summary, self.fail = packed, summary, fail
        self.sent: list[int] = []

    async def send(self, inputs: Tensors) -> predict_pb2.PredictResponse:
        await asyncio.sleep(0)
        x = inputs["x"]
        rows = x.tensor_shape.dim[0].size
        self.sent.append(rows)
        if self.fail:
            raise UpstreamError(grpc.StatusCode.INVALID_ARGUMENT, "scripted")
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = "m"
        values = [2 * float(v) for v in to_list(x)]  # type: ignore[arg-type]
        dims = [d.size for d in x.tensor_shape.dim]
        if self.packed:
            reply.outputs["y"].CopyFrom(float_tensor(values, dims))
        else:
            reply.outputs["y"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=values))
            for d in dims:
                reply.outputs["y"].tensor_shape.dim.add(size=d)
        if "t" in inputs:
            texts = [bytes(v).upper() for v in inputs["t"].string_val]
            reply.outputs["label"].CopyFrom(string_tensor(texts))
        if self.summary:
            reply.outputs["n"].CopyFrom(float_tensor([float(rows)], [1]))
        return reply


def _rows(first: float, rows: int, width: int = 3) -> dict[str, tensor_pb2.TensorProto]:
    return {"x": float_tensor([first + i for i in range(rows * width)], [rows, width])}


async def _together(
    coalescer: Coalescer, upstream: Upstream, parts: Sequence[Tensors], key: object = "k"
) -> list[predict_pb2.PredictResponse]:
    return await asyncio.gather(*(coalescer.run(key, p, upstream.send) for p in parts))


def _y(reply: predict_pb2.PredictResponse) -> tuple[list[int], list[float]]:
    y = reply.outputs["y"]
    return [d.size for d in y.tensor_shape.dim], to_list(y)  # type: ignore[return-value]


@pytest.mark.parametrize("packed", [True, False])
def test_concurrent_callers_share_one_call_and_get_their_own_rows(packed: bool) -> None:
    upstream, coalescer = Upstream(packed=packed), Coalescer(max_rows=32)
    parts = [_rows(100.0 * i, rows) for i, rows in enumerate([1, 3, 1, 2])]
    replies = asyncio.run(_together(coalescer, upstream, parts))
    assert upstream.sent == [7]
    for part, reply in zip(parts, replies, strict=True):
        x = part["x"]
        assert _y(reply) == ([d.size for d in x.tensor_shape.dim], [2 * v for v in to_list(x)])  # type: ignore[operator]
        assert reply.model_spec.name == "m"


def test_strings_are_merged_and_split_too() -> None:
    upstream, coalescer = Upstream(), Coalescer(max_rows=32)
    parts = [
        {"x": float_tensor([1.0], [1, 1]), "t": string_tensor([b"spam"])},
        {"x": float_tensor([2.0, 3.0], [2, 1]), "t": string_tensor([b"ham", b"eggs"])},
    ]
    first, second = asyncio.run(_together(coalescer, upstream, parts))
    assert upstream.sent == [3]
    assert to_list(first.outputs["label"]) == ["SPAM"]
    assert to_list(second.outputs["label"]) == ["HAM", "EGGS"]
    assert _y(second) == ([2, 1], [4.0, 6.0])


def test_a_lone_caller_sends_its_own_tensors() -> None:
    sent: list[Tensors] = []

    async def send(inputs: Tensors) -> predict_pb2.PredictResponse:
        sent.append(inputs)
        return predict_pb2.PredictResponse()

    part = _rows(1.0, 2)
    asyncio.run(Coalescer(max_rows=32).run("k", part, send))
    assert sent == [part] and sent[0] is part


def test_batches_hold_at_most_max_rows() -> None:
    upstream, coalescer = Upstream(), Coalescer(max_rows=4)
    parts = [_rows(10.0 * i, 2) for i in range(5)] + [_rows(99.0, 5)]  # 5 rows: over the bound, alone
    replies = asyncio.run(_together(coalescer, upstream, parts))
    assert sorted(upstream.sent) == [2, 4, 4, 5]
    assert [_y(r)[1] for r in replies] == [[2 * v for v in to_list(p["x"])] for p in parts]  # type: ignore[operator]


def test_different_keys_and_layouts_are_never_merged() -> None:
    upstream, coalescer = Upstream(), Coalescer(max_rows=32)

    async def run() -> None:
        await asyncio.gather(
            coalescer.run("a", _rows(1.0, 1), upstream.send),
            coalescer.run("b", _rows(2.0, 1), upstream.send),
            coalescer.run("a", _rows(3.0, 1, width=4), upstream.send),  # another row shape
            coalescer.run(
                "a", {"x": float_tensor([1.0, 2.0], [2]), "z": float_tensor([1.0], [1])}, upstream.send
            ),
        )

    asyncio.run(run())
    assert sorted(upstream.sent) == [1, 1, 1, 2]


def test_a_reply_not_split_by_rows_is_asked_again_per_caller() -> None:
    upstream, coalescer = Upstream(summary=True), Coalescer(max_rows=32)
    parts = [_rows(1.0, 1), _rows(5.0, 2)]
    replies = asyncio.run(_together(coalescer, upstream, parts))
    assert upstream.sent == [3, 1, 2]
    assert [to_list(r.outputs["n"]) for r in replies] == [[1.0], [2.0]]


def test_compact_outputs_are_asked_again_per_caller() -> None:
    class Compact(Upstream):
        async def send(self, inputs: Tensors) -> predict_pb2.PredictResponse:
            reply = await super().send(inputs)
            y = reply.outputs["y"]
            y.ClearField("tensor_content")
            y.float_val.append(7.0)  # TF's compact form: one value for the whole tensor
            return reply

    upstream, coalescer = Compact(), Coalescer(max_rows=32)
    replies = asyncio.run(_together(coalescer, upstream, [_rows(1.0, 1), _rows(2.0, 1)]))
    assert upstream.sent == [2, 1, 1]
    assert [_y(r)[0] for r in replies] == [[1, 3], [1, 3]]


def test_an_error_of_the_merged_call_reaches_every_caller() -> None:
    upstream, coalescer = Upstream(fail=True), Coalescer(max_rows=32)

    async def run() -> list[object]:
        calls = (coalescer.run("k", _rows(1.0, 1), upstream.send) for _ in range(3))
        return list(await asyncio.gather(*calls, return_exceptions=True))

    answers = asyncio.run(run())
    assert upstream.sent == [3]
    assert all(isinstance(a, UpstreamError) for a in answers)


def test_a_merged_call_refused_as_too_large_is_asked_again_per_caller() -> None:
    class Small(Upstream):  # a model server whose max_batch_size is 2
        async def send(self, inputs: Tensors) -> predict_pb2.PredictResponse:
            rows = inputs["x"].tensor_shape.dim[0].size
            if rows > 2:
                self.sent.append(rows)
                raise UpstreamError(grpc.StatusCode.INVALID_ARGUMENT, "Task size 3 is larger than 2")
            return await super().send(inputs)

    def alone(exc: BaseException) -> bool:
        return isinstance(exc, UpstreamError) and exc.code is grpc.StatusCode.INVALID_ARGUMENT

    upstream, coalescer = Small(), Coalescer(max_rows=32, alone=alone)
    parts = [_rows(1.0, 1), _rows(5.0, 2)]
    replies = asyncio.run(_together(coalescer, upstream, parts))
    assert upstream.sent == [3, 1, 2]
    assert [_y(r)[1] for r in replies] == [[2 * v for v in to_list(p["x"])] for p in parts]  # type: ignore[operator]


def test_a_caller_that_goes_away_leaves_the_others_answered() -> None:
    upstream, coalescer = Upstream(), Coalescer(max_rows=32)

    async def run() -> tuple[list[float], list[float]]:
        first = asyncio.ensure_future(coalescer.run("k", _rows(1.0, 1), upstream.send))
        gone = asyncio.ensure_future(coalescer.run("k", _rows(2.0, 1), upstream.send))
        last = asyncio.ensure_future(coalescer.run("k", _rows(3.0, 1), upstream.send))
        await asyncio.sleep(0)
        gone.cancel()
        done = await asyncio.wait_for(asyncio.gather(first, last), 60)  # hang guard only
        return _y(done[0])[1], _y(done[1])[1]

    assert asyncio.run(run()) == ([2.0, 4.0, 6.0], [6.0, 8.0, 10.0])
    assert upstream.sent == [3]


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ({"x": [-1, 28, 28, 1]}, True),
        ({"a": [-1], "b": [-1, 1]}, True),
        ({"x": [1, 28, 28, 1]}, False),  # a fixed batch size
        ({"x": [-1], "y": [4]}, False),
        ({"x": None}, False),  # unknown rank
        ({"x": []}, False),  # a scalar
        ({}, False),
    ],
)
def test_batchable_needs_an_unknown_first_dimension_on_every_input(
    shapes: dict[str, list[int] | None], expected: bool
) -> None:
    assert batchable(shapes) is expected


# ---- through gRPC: the fake TF Serving ---------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with FakeModelServer({"half": {1: "AVAILABLE"}}) as server:
        yield server


@pytest.mark.parametrize("coalesce", [True, False])
def test_client_predicts_share_one_grpc_call(fake: FakeModelServer, coalesce: bool) -> None:
    settings = Settings(default_model_server=fake.address, coalesce=coalesce)
    metrics = Metrics()

    async def run() -> list[list[float]]:
        client = ModelClient(settings, metrics)
        try:
            replies = await asyncio.gather(
                *(
                    client.predict("half", {"x": float_tensor([float(i), -float(i)], [2])}, batchable=True)
                    for i in range(6)
                )
            )
        finally:
            await client.close()
        return [to_list(r.outputs["y"]) for r in replies]  # type: ignore[misc]

    assert asyncio.run(run()) == [[0.5 * i + 2, -0.5 * i + 2] for i in range(6)]
    assert fake.calls["Predict"] == (1 if coalesce else 6)
    text = metrics_text(metrics)
    assert ("gateway_coalesced_requests_sum 6.0" in text) is coalesce


def metrics_text(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_concurrent_gateway_requests_share_one_predict(fake: FakeModelServer, tmp_path: Path) -> None:
    (tmp_path / "half" / "1").mkdir(parents=True)
    config = tmp_path / "models.config"
    entry = f'name: "half" base_path: "{tmp_path}/half" model_platform: "tensorflow"'
    config.write_text(f"model_config_list {{ config {{ {entry} }} }}")
    app = create_app(Settings(model_config_file=config, default_model_server=fake.address))

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as http,
        ):
            first = await http.post("/v1/models/half:predict", json={"records": [{"x": 0.0}]})  # the contract
            assert first.status_code == 200, first.text
            before = fake.calls["Predict"]
            replies = await asyncio.gather(
                *(http.post("/v1/models/half:predict", json={"records": [{"x": float(i)}]}) for i in range(8))
            )
            assert fake.calls["Predict"] - before < 8
            return replies

    replies = asyncio.run(run())
    assert [r.json()["predictions"] for r in replies] == [[{"y": 0.5 * i + 2}] for i in range(8)]
