"""The Open Inference Protocol's REST API (KServe v2), served on the same port as TF Serving's REST API: the
server's REST app sends every path under ``/v2`` here. A thin adapter: it matches URLs, converts JSON and
binary bodies (``oip.tensors``) and delegates to ``OipDataPlane``.

    GET  /v2                                                   server metadata
    GET  /v2/health/live | /v2/health/ready                    {"live": true} / {"ready": bool}
    GET  /v2/models/{model}[/versions/{version}]               model metadata
    GET  /v2/models/{model}[/versions/{version}]/ready         {"name", "ready"}
    POST /v2/models/{model}[/versions/{version}]/infer         inference

Binary data extension (Triton's ``binary_tensor_data``): a request with header
``Inference-Header-Content-Length: N`` carries N bytes of JSON and then the raw bytes of every input whose
``parameters.binary_data_size`` is set, in input order. Outputs are binary when the output's parameter
``binary_data`` is true, or when the request parameter ``binary_data_output`` is true and the output does not
say otherwise; the reply then carries the header and the raw bytes after its JSON. Bodies may be gzip.

Errors: ``{"error": "<message>"}`` with 400 for a bad request and 404 for an unknown model/version/label/
signature (``ServingError.http_status``); a model that is not ready answers 503 on the ready endpoints. An
unexpected exception is logged and answered with a 500 and one line, never a traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelserver.dataplane import PROTOCOL
from modelserver.errors import InvalidArgument, ServingError
from modelserver.observe import tracing
from modelserver.protocols.http import DEFAULT_MAX_BODY_BYTES, offload, read_body
from modelserver.protocols.oip.service import (
    InferRequest,
    InferResponse,
    OipDataPlane,
    RequestedOutput,
    Tensor,
)
from modelserver.protocols.oip.tensors import (
    check_shape,
    from_json_data,
    from_raw,
    spend_declared,
    to_json_data,
    to_raw,
)
from modelserver.runtime.limits import DEFAULT_LIMITS, RequestBudget, RequestLimits

__all__ = ["HEADER_LENGTH", "OipRestApi", "is_oip_path"]

log = logging.getLogger("modelserver.oip_rest")

HEADER_LENGTH = "inference-header-content-length"
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
_MODEL = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?")
_REFUSED_PARAMETERS = {
    "shared_memory_region": "the shared memory extensions are not supported (docs/oip.md)",
    "classification": "the classification extension is not supported; request the model's outputs",
}


def is_oip_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def _parameters(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    parameters = _object(value, f"{what} parameters")
    for key, reason in _REFUSED_PARAMETERS.items():
        if any(name.startswith(key) for name in parameters):
            raise InvalidArgument(f"{what}: {reason}")
    return parameters


def _binary_size(parameters: dict[str, Any], name: str) -> int | None:
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"input '{name}': binary_data_size must be a non-negative integer")
    return size


def parse_infer_request(
    body: bytes, header_length: str | None, model: str, version: str, limits: RequestLimits = DEFAULT_LIMITS
) -> InferRequest:
    """An infer body (JSON, or JSON + binary with ``Inference-Header-Content-Length``) as an InferRequest;
    the JSON's estimated cost and each input's declared shape are checked against ``limits`` before they
    are parsed or decoded."""
    document, binary = _split_body(body, header_length, limits)
    inputs = document.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidArgument("the request needs 'inputs': a list of tensors")
    tensors = _input_tensors(inputs, binary, RequestBudget(limits))
    outputs = []
    for item in document.get("outputs") or []:
        item = _object(item, "each requested output")
        if not isinstance(item.get("name"), str):
            raise InvalidArgument("each requested output needs a string 'name'")
        outputs.append(RequestedOutput(item["name"], _parameters(item.get("parameters"), "output")))
    request_id = document.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument("'id' must be a string")
    return InferRequest(
        model_name=model,
        model_version=version,
        id=request_id,
        parameters=_parameters(document.get("parameters"), "the request"),
        inputs=tensors,
        outputs=outputs,
    )


def _split_body(
    body: bytes, header_length: str | None, limits: RequestLimits
) -> tuple[dict[str, Any], memoryview]:
    """The JSON document (an object) and the binary data after it; the JSON costed before it is parsed."""
    json_end = len(body)
    if header_length is not None:
        if not header_length.strip().isdigit():
            raise InvalidArgument(f"Inference-Header-Content-Length must be a number, got {header_length!r}")
        json_end = int(header_length)
        if json_end > len(body):
            raise InvalidArgument(
                f"Inference-Header-Content-Length is {json_end} but the body has only {len(body)} bytes"
            )
    limits.check_json_body(body, json_end)
    try:
        document = orjson.loads(memoryview(body)[:json_end])
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the request JSON is malformed: {exc}") from None
    return _object(document, "the request"), memoryview(body)[json_end:]


def _input_tensors(inputs: list[Any], binary: memoryview, budget: RequestBudget) -> list[Tensor]:
    """Each input from its JSON ``data`` or its slice of the binary data, which the inputs must claim whole;
    each declared shape charged to ``budget`` before its data is decoded."""
    tensors = []
    offset = 0
    for item in inputs:
        item = _object(item, "each input")
        name, datatype = item.get("name"), item.get("datatype")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidArgument("each input needs a string 'name' and 'datatype'")
        shape = check_shape(name, item.get("shape"))
        spend_declared(budget, name, datatype, shape)
        parameters = _parameters(item.get("parameters"), f"input '{name}'")
        size = _binary_size(parameters, name)
        if size is not None:
            if "data" in item:
                raise InvalidArgument(f"input '{name}' has both 'data' and binary_data_size")
            if offset + size > len(binary):
                raise InvalidArgument(
                    f"input '{name}': binary_data_size {size} runs past the end of the binary data "
                    f"({len(binary) - offset} bytes left; check Inference-Header-Content-Length)"
                )
            array = from_raw(name, datatype, shape, binary[offset : offset + size])
            offset += size
        elif "data" in item:
            base64_elements = parameters.get("content_type") == "base64"
            array = from_json_data(name, datatype, shape, item["data"], base64_elements=base64_elements)
        else:
            raise InvalidArgument(f"input '{name}' has neither 'data' nor binary_data_size")
        tensors.append(Tensor(name, datatype, shape, array, parameters))
    if offset != len(binary):
        raise InvalidArgument(
            f"{len(binary) - offset} bytes of binary data are not claimed by any input's binary_data_size "
            "(check Inference-Header-Content-Length)"
        )
    return tensors


def render_infer_response(response: InferResponse, request: InferRequest) -> tuple[bytes, int | None]:
    """The reply body and, when any output is binary, the length of its JSON part."""
    default_binary = request.parameters.get("binary_data_output") is True
    wanted = {o.name: o.parameters.get("binary_data") for o in request.outputs}
    outputs, chunks = [], []
    for tensor in response.outputs:
        binary = wanted.get(tensor.name)
        item: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if binary is True or (binary is None and default_binary):
            raw = to_raw(tensor.array, tensor.datatype)
            item["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            item["data"], parameters = to_json_data(tensor.array, tensor.datatype)
            if parameters:
                item["parameters"] = parameters
        outputs.append(item)
    document: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        document["id"] = response.id
    document["outputs"] = outputs
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


class OipRestApi:
    """ASGI app for the ``/v2`` paths; holds no per-request state."""

    def __init__(
        self,
        oip: OipDataPlane,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        limits: RequestLimits = DEFAULT_LIMITS,
    ) -> None:
        self._oip = oip
        self._limits = limits
        self._max_body_bytes = max_body_bytes  # after inflation, as TF Serving's REST API here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        PROTOCOL.set("oip_rest")
        request = Request(scope, receive)
        try:
            response = await self._respond(request)
        except ServingError as error:
            response = _error(error.message, error.http_status)
        except Exception as exc:  # a bug: logged in full here, one line to the client
            log.exception("OIP REST %s %s failed", request.method, request.url.path)
            response = _error(f"Internal error: {type(exc).__name__}", 500)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        method, path = request.method, request.url.path.rstrip("/") or "/"
        if path == "/v2" and method == "GET":
            return _json(self._oip.server_metadata())
        if path == "/v2/health/live" and method == "GET":
            return _json({"live": self._oip.server_live()})
        if path == "/v2/health/ready" and method == "GET":
            ready = self._oip.server_ready()
            return _json({"ready": ready}, 200 if ready else 503)
        match = _MODEL.fullmatch(_raw_path(request))
        if match is None:
            return _error(f"Not found: {method} {request.url.path}", 404)
        model, version = unquote(match.group(1)), unquote(match.group(2) or "")
        verb = match.group(3)
        if verb == "/infer":
            if method != "POST":
                return _error(f"Method not allowed: {method} {request.url.path}; use POST", 405)
            return await tracing.around(
                "modelserver.ModelInfer",
                request.headers.items(),
                lambda: self._infer(request, model, version),
            )
        if method != "GET":
            return _error(f"Method not allowed: {method} {request.url.path}; use GET", 405)
        if verb == "/ready":
            ready = self._oip.model_ready(model, version)
            return _json({"name": model, "ready": ready}, 200 if ready else 503)
        metadata = await self._oip.model_metadata(model, version)
        return _json(
            {
                "name": metadata.name,
                "versions": metadata.versions,
                "platform": metadata.platform,
                "inputs": [vars(t) for t in metadata.inputs],
                "outputs": [vars(t) for t in metadata.outputs],
            }
        )

    async def _infer(self, request: Request, model: str, version: str) -> Response:
        body = await read_body(request, self._max_body_bytes)
        header = request.headers.get(HEADER_LENGTH)
        # big bodies are parsed and written off the event loop (http.offload), so small requests keep flowing
        parsed: InferRequest = await offload(
            lambda: parse_infer_request(body, header, model, version, self._limits), len(body)
        )
        response = await self._oip.infer(parsed)
        size = sum(t.array.nbytes for t in response.outputs)
        payload, json_length = await offload(lambda: render_infer_response(response, parsed), size)
        if json_length is None:
            return Response(payload, media_type=JSON)
        return Response(payload, media_type=OCTET_STREAM, headers={HEADER_LENGTH: str(json_length)})


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1").split("?", 1)[0] if raw else request.url.path
    return path.rstrip("/")
