"""modelserver.observe.tracing in process, spans caught by OpenTelemetry's in-memory exporter: Classify, Regress
(TF Serving's gRPC and REST) and ModelInfer (OIP's gRPC and REST) are traced as Predict is - one SERVER span
named after the API, the child of the caller's ``traceparent``, with the runtime's ``session run`` and
``response encoding`` children - on a real data plane and real gRPC/ASGI adapters serving tiny SavedModels.
And sampling (guard.tracing.sampler): parent-based, the ratio setting before OpenTelemetry's environment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

from guard.tracing import DEFAULT_SAMPLE_RATIO, sampler
from modelserver.dataplane import DataPlane
from modelserver.observe import tracing
from modelserver.protocols.oip.grpc_service import add_oip_service
from modelserver.protocols.oip.rest import OipRestApi
from modelserver.protocols.oip.service import OipDataPlane
from modelserver.protocols.tfs.grpc_service import add_services
from modelserver.protocols.tfs.rest import create_rest_app
from oip_protos import grpc_predict_v2_pb2 as pb
from oip_protos import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.modelserver.test_dataplane import examples, run, spec

TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE}-{PARENT}-01"
UNSAMPLED = f"00-{TRACE}-{PARENT}-00"


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    caught = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler(0.0))  # roots never sampled: only the callers' decisions count
    provider.add_span_processor(SimpleSpanProcessor(caught))
    monkeypatch.setattr(tracing, "TRACER", provider.get_tracer("test"))
    yield caught
    provider.shutdown()


async def _grpc_calls(dp: DataPlane, traceparent: str) -> None:
    server = grpc.aio.server()
    add_services(server, dp, healthcheck=False)
    add_oip_service(server, OipDataPlane(dp))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    metadata = (("traceparent", traceparent),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            tfs = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            classified = await tfs.Classify(
                classification_pb2.ClassificationRequest(
                    model_spec=spec(version=1, signature="classify_x_to_y"), input=examples({"x": 2.0})
                ),
                metadata=metadata,
            )
            assert classified.result.classifications[0].classes[0].score == 3.0
            regressed = await tfs.Regress(
                regression_pb2.RegressionRequest(
                    model_spec=spec(version=1, signature="regress_x_to_y"), input=examples({"x": 2.0})
                ),
                metadata=metadata,
            )
            assert regressed.result.regressions[0].value == 3.0
            request = pb.ModelInferRequest(model_name="half", model_version="1")
            tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
            tensor.contents.fp32_contents.append(2.0)
            inferred = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata)
            assert np.frombuffer(inferred.raw_output_contents[0], np.float32).tolist() == [3.0]
    finally:
        await server.stop(None)


async def _rest_calls(dp: DataPlane, traceparent: str) -> None:
    headers = {"traceparent": traceparent}
    tfs = httpx.ASGITransport(app=create_rest_app(dp))
    async with httpx.AsyncClient(transport=tfs, base_url="http://127.0.0.1", headers=headers) as client:
        body: dict[str, Any] = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
        reply = await client.post("/v1/models/half/versions/1:classify", json=body)
        assert reply.json() == {"results": [[["", 3.0]]]}, reply.text
        body["signature_name"] = "regress_x_to_y"
        reply = await client.post("/v1/models/half/versions/1:regress", json=body)
        assert reply.json() == {"results": [3.0]}, reply.text
    oip = httpx.ASGITransport(app=OipRestApi(OipDataPlane(dp)))
    async with httpx.AsyncClient(transport=oip, base_url="http://127.0.0.1", headers=headers) as client:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [2.0]}]}
        reply = await client.post("/v2/models/half/versions/1/infer", json=body)
        assert reply.json()["outputs"][0]["data"] == [3.0], reply.text


def _by_root(caught: InMemorySpanExporter) -> dict[str, list[str]]:
    """Each API span's name -> the names of its children, in the order they ended."""
    spans = caught.get_finished_spans()
    roots = {
        s.context.span_id: s.name
        for s in spans
        if s.parent is not None and s.parent.span_id == int(PARENT, 16)
    }
    tree: dict[str, list[str]] = {name: [] for name in roots.values()}
    for s in spans:
        if s.parent is not None and s.parent.span_id in roots:
            tree[roots[s.parent.span_id]].append(s.name)
    assert all(s.context.trace_id == int(TRACE, 16) for s in spans), "a span left the caller's trace"
    return tree


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_classify_regress_and_oip_infer_are_traced_as_predict(
    tiny: dict[str, Path], tmp_path: Path, exporter: InMemorySpanExporter, transport: str
) -> None:
    calls = _grpc_calls if transport == "grpc" else _rest_calls
    run(tiny, tmp_path, lambda dp, _: calls(dp, SAMPLED))
    tree = _by_root(exporter)
    expected = {"modelserver.Classify", "modelserver.Regress", "modelserver.ModelInfer"}
    assert tree.keys() == expected
    for name in expected:  # no batcher here: no queue wait, the run then the reply's encoding
        assert tree[name] == ["session run", "response encoding"], name
    assert len(exporter.get_finished_spans()) == 9


def test_an_unsampled_caller_gets_no_spans(
    tiny: dict[str, Path], tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    async def both(dp: DataPlane, _: Path) -> None:
        await _grpc_calls(dp, UNSAMPLED)
        await _rest_calls(dp, UNSAMPLED)

    run(tiny, tmp_path, both)
    assert exporter.get_finished_spans() == ()


def test_sampler_setting_before_the_environment_before_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    default = sampler()
    assert default is not None and f"TraceIdRatioBased{{{DEFAULT_SAMPLE_RATIO}}}" in default.get_description()
    assert default.get_description().startswith("ParentBased")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    assert sampler() is None  # the SDK's own reading of OTEL_TRACES_SAMPLER(_ARG)
    assert "TraceIdRatioBased{0.25}" in TracerProvider(sampler=sampler()).sampler.get_description()
    chosen = sampler(0.5)
    assert chosen is not None and "TraceIdRatioBased{0.5}" in chosen.get_description()


def test_default_ratio_samples_about_one_root_in_a_hundred() -> None:
    """Head sampling by trace id: 20,000 roots, 1 % expected; the binomial spread is +-70 (5 sigma)."""
    provider = TracerProvider(sampler=sampler(DEFAULT_SAMPLE_RATIO))
    tracer = provider.get_tracer("test")
    recorded = 0
    for _ in range(20_000):
        with tracer.start_as_current_span("root") as span:
            recorded += span.is_recording()
    assert abs(recorded - 200) < 70, recorded
    asyncio.run(asyncio.sleep(0))


def test_the_configured_ratio_is_decided_before_opentelemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configure() with a ratio: traced() decides (the caller's flag, else the ratio) and the provider records
    what it lets through, into MODELSERVER_TRACE_FILE."""
    spans = tmp_path / "spans.jsonl"
    monkeypatch.setenv(tracing.TRACE_FILE_ENV, str(spans))
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)

    async def reply() -> str:
        return "reply"

    def recorded(ratio: float, carrier: list[tuple[str, str]]) -> list[dict[str, Any]]:
        spans.unlink(missing_ok=True)
        tracing.configure(sample_ratio=ratio)
        assert asyncio.run(tracing.around("modelserver.Predict", carrier, reply)) == "reply"
        tracing.flush()
        return [json.loads(line) for line in spans.read_text().splitlines()] if spans.exists() else []

    try:
        assert recorded(0.0, []) == [] and recorded(1.0, [("traceparent", UNSAMPLED)]) == []
        (root,) = recorded(1.0, [])
        assert root["name"] == "modelserver.Predict" and root["parent_id"] is None
        (child,) = recorded(0.0, [("traceparent", SAMPLED)])  # the caller's decision, whatever the ratio
        assert child["parent_id"] == PARENT and child["trace_id"] == TRACE
    finally:
        monkeypatch.delenv(tracing.TRACE_FILE_ENV)
        tracing.configure()
    assert tracing.TRACER is None
