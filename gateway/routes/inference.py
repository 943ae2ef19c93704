"""``POST /v1/models/{name}:classify | :predict | :regress`` - files, texts or records in, plain JSON out.

The body decides the input kind: ``multipart/form-data`` with one or more ``file`` parts (images), or JSON
``{"texts": [...]}`` (text models) or ``{"records": [...]}`` (tabular models). The model's input contract says
how to turn it into tensors (gateway.preprocess). ``version`` or ``label`` picks a version; the reply names
the version that answered, taken from the model server's reply.

``:classify`` calls Predict on the contract's predict signature and ranks its class scores with the contract's
labels: one packed float tensor per batch instead of one tf.Example of 784 floats per image, and the same path
for images and texts. ``:regress`` calls TF Serving's Regress with tf.Examples (Predict when a model has no
regress signature). ``:predict`` returns the raw outputs, one object per input.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from fastapi import APIRouter, Request

from gateway import tracing
from gateway.deps import Services, ServicesDep
from gateway.errors import BadRequest, ModelNotFound, UpstreamError
from gateway.middleware.limits import client_of
from gateway.preprocess.inputs import feature_tensors
from gateway.preprocess.tabular import records_to_examples, validate_records
from gateway.rollout.traffic import Choice
from gateway.routes.inputs import Inputs, input_tensors, read_inputs
from gateway.routes.query import KQuery, LabelQuery, VersionQuery, check_choice
from gateway.schemas import (
    ClassifyReply,
    ClassPrediction,
    ErrorBody,
    LabelScore,
    PredictReply,
    RecordsBody,
    RegressPrediction,
    RegressReply,
    TextsBody,
)
from gateway.upstream.coalesce import batchable
from gateway.upstream.contract import ModelInfo
from gateway.upstream.tensors import shape_of, to_list
from tfs_protos.tensorflow.core.framework import tensor_pb2
from tfs_protos.tensorflow_serving.apis import predict_pb2

router = APIRouter(tags=["inference"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 429, 503, 504)
}
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more images (PNG, JPEG, WebP, BMP, GIF)",
                        }
                    },
                }
            },
            "application/json": {
                "schema": {"oneOf": [TextsBody.model_json_schema(), RecordsBody.model_json_schema()]}
            },
        },
    }
}


async def _predict(
    services: Services, name: str, info: ModelInfo, inputs: Inputs, version: int | None, label: str | None
) -> predict_pb2.PredictResponse:
    with tracing.span("preprocessing"):
        tensors = await input_tensors(services, name, info, inputs)
    signature = info.signatures.get(info.spec.predict_signature)
    declared = signature.inputs if signature is not None else {}
    shapes = {key: declared[key].shape if key in declared else None for key in tensors}
    return await services.client.predict(
        name,
        tensors,
        version=version,
        label=label,
        signature=info.spec.predict_signature,
        batchable=batchable(shapes),
    )


def _rows(tensor: tensor_pb2.TensorProto) -> list[Any]:
    """Split a ``[n, ...]`` tensor into n nested lists (or scalars)."""
    values, shape = to_list(tensor), shape_of(tensor)
    if not shape:
        return values

    def nest(flat: list[Any], dims: list[int]) -> Any:
        if not dims:
            return flat[0]
        step = math.prod(dims[1:]) if len(dims) > 1 else 1
        return [nest(flat[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0])]

    return nest(values, shape)  # type: ignore[no-any-return]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


@contextmanager
def _unloading(services: Services, name: str) -> Iterator[None]:
    """A model removed while the request ran (its versions are unloading: UNAVAILABLE) is reported as the
    model not found, which is what every later request gets."""
    try:
        yield
    except UpstreamError as exc:
        if exc.code is grpc.StatusCode.UNAVAILABLE and name not in services.catalog:
            raise ModelNotFound(name) from None
        raise


def _choose(
    services: Services, name: str, request: Request, version: int | None, label: str | None
) -> Choice:
    """The traffic split's side for ``request`` (the canary's or the stable version when it named neither)."""
    return services.traffic.choose(name, request.headers, version, label, _client(request))


def _answered(reply: Any, info: ModelInfo) -> int:
    spec = reply.model_spec
    return spec.version.value if spec.HasField("version") else info.version


def _client(request: Request) -> str:
    """Who sent ``request`` as the canary's latency rule counts clients: the TCP peer (or the address a
    trusted proxy named; uvicorn resolved it)."""
    return client_of(request.client.host) if request.client else ""


async def classify_reply(
    services: Services, name: str, request: Request, k: int, version: int | None, label: str | None
) -> ClassifyReply:
    """``:classify`` once its parameters are valid (the route and ``gateway.middleware.hot_routes`` both answer here)."""
    if tracing.TRACER is not None:
        with tracing.root("gateway.classify", request.headers, model=name):
            return await _classify_reply(services, name, request, k, version, label)
    return await _classify_reply(services, name, request, k, version, label)


async def _classify_reply(
    services: Services, name: str, request: Request, k: int, version: int | None, label: str | None
) -> ClassifyReply:
    check_choice(version, label)
    services.catalog.check_model(name)
    with tracing.span("upload decode"):
        inputs = await read_inputs(request, services)
    with _unloading(services, name):
        choice = _choose(services, name, request, version, label)
        reply = await services.traffic.answer(
            choice, lambda v, lb: _classify(services, name, inputs, k, v, lb)
        )
    if services.upload_log is not None:
        services.upload_log.offer(name, "classify", inputs.files, inputs.texts, inputs.records, reply)
    return reply


async def _classify(
    services: Services, name: str, inputs: Inputs, k: int, version: int | None, label: str | None
) -> ClassifyReply:
    info = await services.contracts.get(name, version=version, label=label)
    if inputs.records is not None or (info.task == "regression"):
        raise BadRequest(f"model {name!r} is a regressor; use POST /v1/models/{name}:regress")
    reply = await _predict(services, name, info, inputs, version, label)
    outputs = info.spec.predict_outputs or sorted(reply.outputs)
    probabilities = reply.outputs.get(outputs[0]) if outputs else None
    if probabilities is None or len(shape_of(probabilities)) != 2:
        raise BadRequest(f"model {name!r} has no class-score output; use :predict for its raw outputs")
    rows = _rows(probabilities)
    labels = info.labels or [str(i) for i in range(len(rows[0]) if rows else 0)]
    predictions = []
    for input_name, scores in zip(inputs.names, rows, strict=False):
        ranked = heapq.nlargest(k, range(len(scores)), key=scores.__getitem__)  # = sorted(...)[:k], ties too
        top = [
            LabelScore(label=labels[i] if i < len(labels) else str(i), score=float(scores[i])) for i in ranked
        ]
        predictions.append(ClassPrediction(input=input_name, label=top[0].label, score=top[0].score, top=top))
    return ClassifyReply(model=name, version=_answered(reply, info), predictions=predictions)


async def predict_reply(
    services: Services, name: str, request: Request, version: int | None, label: str | None
) -> PredictReply:
    """``:predict`` once its parameters are valid (the route and ``gateway.middleware.hot_routes`` both answer here)."""
    if tracing.TRACER is not None:
        with tracing.root("gateway.predict", request.headers, model=name):
            return await _predict_reply(services, name, request, version, label)
    return await _predict_reply(services, name, request, version, label)


async def _predict_reply(
    services: Services, name: str, request: Request, version: int | None, label: str | None
) -> PredictReply:
    check_choice(version, label)
    services.catalog.check_model(name)
    with tracing.span("upload decode"):
        inputs = await read_inputs(request, services)
    with _unloading(services, name):
        choice = _choose(services, name, request, version, label)
        reply = await services.traffic.answer(choice, lambda v, lb: _raw(services, name, inputs, v, lb))
    if services.upload_log is not None:
        services.upload_log.offer(name, "predict", inputs.files, inputs.texts, inputs.records, reply)
    return reply


async def _raw(
    services: Services, name: str, inputs: Inputs, version: int | None, label: str | None
) -> PredictReply:
    info = await services.contracts.get(name, version=version, label=label)
    reply = await _predict(services, name, info, inputs, version, label)
    columns = {key: _rows(tensor) for key, tensor in sorted(reply.outputs.items())}
    predictions = [
        {key: _json_safe(values[i]) for key, values in columns.items() if i < len(values)}
        for i in range(len(inputs.names))
    ]
    return PredictReply(
        model=name,
        version=_answered(reply, info),
        signature=info.predict_signature(),
        predictions=predictions,
    )


@router.post(
    "/v1/models/{name}:classify",
    response_model=ClassifyReply,
    responses=ERRORS,
    openapi_extra=BODY,
    summary="Top-k labels for images (multipart 'file') or texts (JSON)",
)
async def classify(
    name: str,
    request: Request,
    services: ServicesDep,
    k: int = KQuery,
    version: int | None = VersionQuery,
    label: str | None = LabelQuery,
) -> ClassifyReply:
    return await classify_reply(services, name, request, k, version, label)


@router.post(
    "/v1/models/{name}:predict",
    response_model=PredictReply,
    responses=ERRORS,
    openapi_extra=BODY,
    summary="Raw model outputs for images, texts or records",
)
async def predict(
    name: str,
    request: Request,
    services: ServicesDep,
    version: int | None = VersionQuery,
    label: str | None = LabelQuery,
) -> PredictReply:
    return await predict_reply(services, name, request, version, label)


@router.post(
    "/v1/models/{name}:regress",
    response_model=RegressReply,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RecordsBody.model_json_schema()}},
        }
    },
    summary="Regression on records with named features (TF Serving Regress)",
)
async def regress(
    name: str,
    request: Request,
    services: ServicesDep,
    version: int | None = VersionQuery,
    label: str | None = LabelQuery,
) -> RegressReply:
    check_choice(version, label)
    services.catalog.check_model(name)
    inputs = await read_inputs(request, services)
    if inputs.records is None:
        raise BadRequest('regress takes JSON {"records": [{"feature": value, ...}]}')
    records_in = inputs.records
    with _unloading(services, name):
        choice = _choose(services, name, request, version, label)
        return await services.traffic.answer(
            choice, lambda v, lb: _regress(services, name, inputs, records_in, v, lb)
        )


async def _regress(
    services: Services,
    name: str,
    inputs: Inputs,
    records_in: list[dict[str, Any]],
    version: int | None,
    label: str | None,
) -> RegressReply:
    info = await services.contracts.get(name, version=version, label=label)
    features = info.spec.for_records()
    records = validate_records(records_in, features, max_items=services.settings.max_files)
    regress_sig = info.spec.regress_signature
    values: list[float]
    if regress_sig and regress_sig in info.signatures:
        reply: Any = await services.client.regress(
            name, records_to_examples(records), version=version, label=label, signature=regress_sig
        )
        values = [r.value for r in reply.result.regressions]
    else:
        reply = await services.client.predict(
            name,
            feature_tensors(records, features),
            version=version,
            label=label,
            signature=info.predict_signature(),
        )
        first = sorted(reply.outputs)[0]
        values = [float(v) for v in to_list(reply.outputs[first])]  # type: ignore[arg-type]
    unit = info.spec.unit
    return RegressReply(
        model=name,
        version=_answered(reply, info),
        unit=unit,
        predictions=[
            RegressPrediction(input=n, value=float(v)) for n, v in zip(inputs.names, values, strict=False)
        ],
    )
