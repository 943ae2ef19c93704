"""``POST /v1/models/{name}:explain`` - why the model answered what it did: the same inputs as ``:classify``
(images as multipart ``file``, ``{"texts": [...]}``, ``{"records": [...]}``), integrated-gradients
attributions out.

It is one Predict call on the signature the contract names under ``explain`` (export/explain.py writes it
into the SavedModel), so it works against the official TensorFlow Serving too. TF Serving fails a Predict that
leaves out a signature input, so the gateway always sends ``steps`` and ``class_id`` (one per input), from the query or from
the contract's defaults. Replies: images get their attributions [h][w][c] and a base64 PNG heat layer (or,
with ``?format=png``, the overlay of one image as ``image/png``); texts the model's tokens with their weights;
records each feature's contribution in the output's unit. A model without the signature gets a 400 that says
so.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from gateway import heatmap
from gateway.deps import Services, ServicesDep
from gateway.errors import BadRequest
from gateway.preprocess.image import ImageSpec
from gateway.routes.inference import (
    BODY,
    ERRORS,
    _answered,
    _client,
    _unloading,
)
from gateway.routes.inputs import Inputs, input_tensors, read_inputs
from gateway.routes.query import LabelQuery, VersionQuery, check_choice
from gateway.schemas import ExplainReply, Explanation, FeatureContribution, TokenWeight
from gateway.upstream.contract import ModelInfo
from gateway.upstream.tensors import shape_of, shape_proto, to_list
from tfs_protos.tensorflow.core.framework import tensor_pb2, types_pb2
from tfs_protos.tensorflow_serving.apis import predict_pb2

__all__ = ["router"]

router = APIRouter(tags=["inference"])

TOP_CLASS = -1  # the signature's class_id for "the top class"
PNG_SIDE = 224  # ?format=png and the heat layer: scaled up to about this many pixels a side

FormatQuery = Query("json", pattern="^(json|png)$", description="json, or png: the overlay of one image")
ClassQuery = Query(
    None,
    alias="class",
    max_length=200,
    description="the label (or class index) to explain; default the top one",
)
StepsQuery = Query(None, ge=1, le=4096, description="integration steps; default the contract's (e.g. 32)")


def _int32(values: list[int], dims: list[int]) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape=shape_proto(dims), int_val=values)


def _section(name: str, info: ModelInfo) -> dict[str, Any]:
    section = info.contract.get("explain")
    key = section.get("signature") if isinstance(section, dict) else None
    if not isinstance(section, dict) or not key:
        raise BadRequest(
            f"model {name!r} version {info.version} has no explain signature (its contract names none); "
            "export it again with a current `python -m export` to get one"
        )
    if key not in info.signatures:  # e.g. a TF Lite version: it serves only what its model.tflite holds
        raise BadRequest(
            f"model {name!r} version {info.version} does not serve its explain signature {key!r} (it serves "
            f"{', '.join(sorted(info.signatures)) or 'none'}; a TF Lite version serves only the signatures "
            "of its model.tflite)"
        )
    return section


def _class_index(name: str, info: ModelInfo, requested: str | None) -> int:
    if requested is None:
        return TOP_CLASS
    if not info.labels:
        raise BadRequest(f"model {name!r} has no classes to choose from; leave out class")
    if requested in info.labels:
        return info.labels.index(requested)
    if requested.isdigit() and int(requested) < len(info.labels):
        return int(requested)
    raise BadRequest(f"class {requested!r} is not one of {name!r}'s labels: {', '.join(info.labels)}")


def _steps(section: dict[str, Any], requested: int | None) -> int:
    most = int(section.get("max_steps", 256))
    steps = int(section.get("steps", 32)) if requested is None else requested
    if steps > most:
        raise BadRequest(f"steps={steps} is over this model's limit of {most}")
    return steps


def _output(reply: predict_pb2.PredictResponse, key: str, signature: str) -> tensor_pb2.TensorProto:
    if key not in reply.outputs:
        raise BadRequest(f"the {signature!r} signature has no output {key!r}; it is not an explain signature")
    return reply.outputs[key]


def _nest(flat: list[float], dims: list[int]) -> Any:
    if not dims:
        return flat[0]
    step = math.prod(dims[1:])
    return [_nest(flat[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0])]


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _image_scale(spec: ImageSpec) -> int:
    return max(1, PNG_SIDE // max(spec.height, spec.width))


@dataclass
class _Explained:
    """The explain signature's reply, flat: ``per_input`` attributions per input, row after row."""

    flat: list[float]
    dims: list[int]
    classes: list[int]
    scores: list[float]
    baselines: list[float]
    tokens: list[object] | None

    @property
    def per_input(self) -> int:
        return math.prod(self.dims[1:]) if len(self.dims) > 1 else 1

    def row(self, i: int) -> list[float]:
        return self.flat[i * self.per_input : (i + 1) * self.per_input]

    @classmethod
    def read(cls, reply: predict_pb2.PredictResponse, signature: str) -> _Explained:
        attributions = _output(reply, "attributions", signature)
        return cls(
            flat=[float(v) for v in to_list(attributions)],  # type: ignore[arg-type]
            dims=shape_of(attributions),
            classes=[int(v) for v in to_list(_output(reply, "class_id", signature))],  # type: ignore[call-overload]
            scores=[float(v) for v in to_list(_output(reply, "score", signature))],  # type: ignore[arg-type]
            baselines=[float(v) for v in to_list(_output(reply, "baseline_score", signature))],  # type: ignore[arg-type]
            tokens=to_list(reply.outputs["tokens"]) if "tokens" in reply.outputs else None,
        )


def _b64(picture: Any) -> str:
    return base64.b64encode(heatmap.png(picture)).decode("ascii")


async def _overlay(spec: ImageSpec, pixels: tensor_pb2.TensorProto, out: _Explained) -> str:
    """The first image with its heat layer on top, as base64 PNG (``?format=png``)."""
    span = (spec.high - spec.low) or 1.0
    unit = [(float(v) - spec.low) / span for v in to_list(pixels)[: out.per_input]]  # type: ignore[arg-type]
    weights = heatmap.pixel_weights(out.row(0), spec.channels)
    picture = await run_in_threadpool(
        heatmap.overlay, unit, spec.channels, weights, spec.height, spec.width, _image_scale(spec)
    )
    return _b64(picture)


def _detail(
    item: Explanation,
    i: int,
    out: _Explained,
    spec: ImageSpec | None,
    section: dict[str, Any],
    tensors: dict[str, tensor_pb2.TensorProto],
) -> None:
    """Fill what an input kind shows: pixels and a heat layer, tokens, or feature contributions."""
    row = out.row(i)
    features = list(section.get("features") or [])
    reference = section.get("baseline_values") or {}
    if spec is not None:
        item.attributions = _nest(row, out.dims[1:])
        weights = heatmap.pixel_weights(row, spec.channels)
        item.heatmap = _b64(heatmap.heat_layer(weights, spec.height, spec.width, _image_scale(spec)))
    elif out.tokens is not None:
        words = out.tokens[i * out.per_input : (i + 1) * out.per_input]
        item.tokens = [TokenWeight(token=str(t), weight=w) for t, w in zip(words, row, strict=True) if t]
    elif features and len(features) == out.per_input:
        item.features = [
            FeatureContribution(
                feature=feature,
                value=_finite(to_list(tensors[feature])[i]) if feature in tensors else None,
                baseline=_finite(reference[feature]) if feature in reference else None,
                contribution=w,
            )
            for feature, w in zip(features, row, strict=True)
        ]
    else:
        item.attributions = _nest(row, out.dims[1:])


async def _explain(
    services: Services,
    name: str,
    info: ModelInfo,
    inputs: Inputs,
    choice: tuple[int | None, str | None],
    query: tuple[str, str | None, int | None],
) -> ExplainReply:
    """One Predict on the explain signature; ``query`` is (format, class, steps) as the client sent them."""
    output, requested_class, requested_steps = query
    section = _section(name, info)
    signature = str(section["signature"])
    steps = _steps(section, requested_steps)
    class_id = _class_index(name, info, requested_class)
    if output == "png" and len(inputs.files) != 1:
        raise BadRequest("format=png draws one image: upload exactly one file")
    tensors = await input_tensors(services, name, info, inputs)
    count = len(inputs.names)
    tensors["steps"] = _int32([steps] * count, [count])  # per row: TF Serving's batching needs a batch dim
    if "class_id" in info.signatures[signature].inputs:
        tensors["class_id"] = _int32([class_id] * count, [count])
    version, label = choice
    reply = await services.client.predict(name, tensors, version=version, label=label, signature=signature)
    out = _Explained.read(reply, signature)
    image = info.image_input() if inputs.files else None
    spec = ImageSpec.from_contract(image[1]) if image else None
    overlay = await _overlay(spec, tensors[image[0]], out) if spec and image and output == "png" else None
    explanations = []
    for i, input_name in enumerate(inputs.names):
        item = Explanation(
            input=input_name,
            class_id=out.classes[i] if out.classes[i] >= 0 else None,
            label=info.labels[out.classes[i]] if 0 <= out.classes[i] < len(info.labels) else None,
            score=out.scores[i],
            baseline_score=out.baselines[i],
            total=math.fsum(out.row(i)),
        )
        if overlay is not None:  # ?format=png: the route sends it as the body
            item.heatmap = overlay
        else:
            _detail(item, i, out, spec, section, tensors)
        explanations.append(item)
    unit = info.contract.get("output", {}).get("unit") if info.task == "regression" else None
    return ExplainReply(
        model=name,
        version=_answered(reply, info),
        signature=signature,
        method=str(section.get("method", "integrated_gradients")),
        baseline=str(section.get("baseline", "")),
        steps=steps,
        unit=str(unit) if unit else None,
        predictions=explanations,
    )


async def _answer(
    services: Services,
    name: str,
    inputs: Inputs,
    version: int | None,
    label: str | None,
    query: tuple[str, str | None, int | None],
) -> ExplainReply:
    info = await services.contracts.get(name, version=version, label=label)
    return await _explain(services, name, info, inputs, (version, label), query)


async def explain_reply(
    services: Services,
    name: str,
    request: Request,
    picked: tuple[int | None, str | None],
    query: tuple[str, str | None, int | None],
) -> Any:
    """``:explain`` once its parameters are valid: JSON, or with ``?format=png`` the overlay's bytes."""
    check_choice(*picked)
    services.catalog.check_model(name)
    inputs = await read_inputs(request, services)
    traffic = services.traffic
    with _unloading(services, name):  # removed while the request ran: 404, as every later request
        choice = traffic.choose(name, request.headers, *picked, _client(request))
        reply = await traffic.answer(choice, lambda v, lb: _answer(services, name, inputs, v, lb, query))
    if query[0] == "png":
        return Response(base64.b64decode(reply.predictions[0].heatmap or ""), media_type="image/png")
    return reply


@router.post(
    "/v1/models/{name}:explain",
    response_model=ExplainReply,
    responses={**ERRORS, 200: {"content": {"image/png": {}}}},
    openapi_extra=BODY,
    summary="Integrated-gradients attributions for images, texts or records (the model's explain signature)",
)
async def explain(
    name: str,
    request: Request,
    services: ServicesDep,
    version: int | None = VersionQuery,
    label: str | None = LabelQuery,
    format: str = FormatQuery,
    explained: str | None = ClassQuery,
    steps: int | None = StepsQuery,
) -> Any:
    return await explain_reply(services, name, request, (version, label), (format, explained, steps))
