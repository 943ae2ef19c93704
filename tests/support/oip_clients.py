"""Drive a modelserver with clients nobody here wrote: NVIDIA's ``tritonclient`` (HTTP and gRPC) and the
KServe SDK's v2 REST and gRPC clients. Runs in the OIP clients venv (``make oip-clients``: ``.venv-oip``), one
client per process - tritonclient and kserve cannot be imported together (both register ``inference.*``
protos) - and never imports TensorFlow or the stack::

    .venv-oip/bin/python tests/support/oip_clients.py < plan.json > results.json

The plan is ``{"client": <CLIENTS key>, "http": "127.0.0.1:8501", "grpc": "127.0.0.1:8500", "calls": [...]}``
with calls ``{"op": "live" | "ready" | "model_ready" | "metadata" | "infer", "model": ..., "version": ...,
"inputs": [{"name", "datatype", "array"}], "outputs": [names], "binary": bool}``. Arrays travel as
``encode_array`` objects; each call answers ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": text,
"status": "400" | "StatusCode.NOT_FOUND" ...}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["CLIENTS", "decode_array", "encode_array"]

CLIENTS = ("triton-http", "triton-grpc", "kserve-rest", "kserve-grpc")


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """A numpy array as JSON (exact: raw bytes in base64; BYTES as a list of base64 items)."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "SU":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel().tolist()]
        return {
            "dtype": "bytes",
            "shape": list(array.shape),
            "items": [base64.b64encode(v).decode() for v in items],
        }
    little = array.astype(array.dtype.newbyteorder("<"))
    return {
        "dtype": array.dtype.str.lstrip("<>|="),
        "shape": list(array.shape),
        "raw": base64.b64encode(little.tobytes()).decode(),
    }


def decode_array(doc: dict[str, Any]) -> np.ndarray:
    if doc["dtype"] == "bytes":
        out = np.empty(len(doc["items"]), dtype=object)
        out[:] = [base64.b64decode(v) for v in doc["items"]]
        return out.reshape(doc["shape"])
    raw = base64.b64decode(doc["raw"])
    return np.frombuffer(raw, dtype=np.dtype("<" + doc["dtype"])).reshape(doc["shape"]).copy()


def _error(exc: Exception) -> dict[str, Any]:
    status = getattr(exc, "status", None)
    if callable(status):
        status = status()
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = response.status_code
    code = getattr(exc, "code", None)
    if status is None and callable(code):
        status = code()
    return {"ok": False, "error": str(exc)[:500], "status": str(status)}


def _as_object(array: np.ndarray) -> np.ndarray:
    # Both SDKs want BYTES as numpy object arrays of bytes.
    if array.dtype == object:
        return array
    return array.astype(object)


# ---- tritonclient -----------------------------------------------------------------------------------------
def _triton(plan: dict[str, Any], grpc: bool) -> list[dict[str, Any]]:
    if grpc:
        import tritonclient.grpc as triton

        client: Any = triton.InferenceServerClient(plan["grpc"])
    else:
        import tritonclient.http as triton  # type: ignore[no-redef]

        client = triton.InferenceServerClient(plan["http"], network_timeout=60.0, connection_timeout=60.0)
    results = []
    for call in plan["calls"]:
        op = call["op"]
        try:
            if op == "live":
                value: Any = client.is_server_live()
            elif op == "ready":
                value = client.is_server_ready()
            elif op == "model_ready":
                value = client.is_model_ready(call["model"], call.get("version", ""))
            elif op == "server_metadata":
                reply = client.get_server_metadata()
                value = _triton_json(reply, grpc)
            elif op == "metadata":
                reply = client.get_model_metadata(call["model"], call.get("version", ""))
                value = _triton_json(reply, grpc)
            else:
                value = _triton_infer(triton, client, call, grpc)
            results.append({"ok": True, "value": value})
        except Exception as exc:  # a reply to compare, not a crash
            results.append(_error(exc))
    client.close()
    return results


def _triton_json(reply: Any, grpc: bool) -> Any:
    if not grpc:
        return reply
    from google.protobuf import json_format

    return json_format.MessageToDict(reply, preserving_proto_field_name=True)


def _triton_infer(triton: Any, client: Any, call: dict[str, Any], grpc: bool) -> Any:
    binary = call.get("binary", True)
    inputs = []
    for item in call["inputs"]:
        array = decode_array(item["array"])
        if item["datatype"] == "BYTES":
            array = _as_object(array)
        tensor = triton.InferInput(item["name"], list(array.shape), item["datatype"])
        if grpc:
            tensor.set_data_from_numpy(array)
        else:
            tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = None
    if call.get("outputs"):
        if grpc:
            outputs = [triton.InferRequestedOutput(name) for name in call["outputs"]]
        else:
            outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in call["outputs"]]
    kwargs: dict[str, Any] = {"model_version": call.get("version", ""), "outputs": outputs}
    if call.get("parameters"):
        kwargs["parameters"] = call["parameters"]
    result = client.infer(call["model"], inputs, **kwargs)
    response = result.get_response()
    names = [o.name for o in response.outputs] if grpc else [o["name"] for o in response["outputs"]]
    return {
        "model_version": response.model_version if grpc else response.get("model_version"),
        "outputs": {name: encode_array(_bytes_items(result.as_numpy(name))) for name in names},
    }


def _bytes_items(array: np.ndarray) -> np.ndarray:
    # tritonclient's JSON BYTES come back as str; binary ones as bytes: compare both as bytes.
    if array.dtype == object:
        out = np.empty(array.shape, dtype=object)
        out.ravel()[:] = [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel().tolist()]
        return out
    return array


# ---- KServe SDK -------------------------------------------------------------------------------------------
async def _kserve(plan: dict[str, Any], grpc: bool) -> list[dict[str, Any]]:
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    base = f"http://{plan['http']}"
    client: Any = (
        InferenceGRPCClient(plan["grpc"], timeout=60)
        if grpc
        else InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    )
    results = []
    for call in plan["calls"]:
        op = call["op"]
        try:
            if op == "live":
                value: Any = await (client.is_server_live() if grpc else client.is_server_live(base))
            elif op == "ready":
                value = await (client.is_server_ready() if grpc else client.is_server_ready(base))
            elif op == "model_ready":
                value = await (
                    client.is_model_ready(call["model"])
                    if grpc
                    else client.is_model_ready(base, call["model"])
                )
            elif op == "infer":
                binary = call.get("binary", True)
                inputs = []
                for item in call["inputs"]:
                    array = decode_array(item["array"])
                    if item["datatype"] == "BYTES":
                        array = _as_object(array)
                    tensor = InferInput(item["name"], list(array.shape), item["datatype"])
                    tensor.set_data_from_numpy(array, binary_data=binary)
                    inputs.append(tensor)
                outputs = None
                if call.get("outputs"):
                    outputs = [RequestedOutput(n, {"binary_data": binary}) for n in call["outputs"]]
                request = InferRequest(
                    model_name=call["model"],
                    infer_inputs=inputs,
                    request_outputs=outputs,
                    parameters=call.get("parameters") or None,
                )
                if call.get("version"):
                    request.model_version = call["version"]
                if grpc:
                    response = await client.infer(request)
                else:
                    response = await client.infer(base, request, model_name=call["model"])
                value = {
                    "model_version": response.model_version,
                    "outputs": {o.name: encode_array(_bytes_items(o.as_numpy())) for o in response.outputs},
                }
            else:
                raise ValueError(f"the KServe SDK clients have no {op!r} call")
            results.append({"ok": True, "value": value})
        except Exception as exc:  # a reply to compare, not a crash
            results.append(_error(exc))
    await client.close()
    return results


RUNNERS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "triton-http": lambda plan: _triton(plan, grpc=False),
    "triton-grpc": lambda plan: _triton(plan, grpc=True),
    "kserve-rest": lambda plan: asyncio.run(_kserve(plan, grpc=False)),
    "kserve-grpc": lambda plan: asyncio.run(_kserve(plan, grpc=True)),
}


def main() -> int:
    plan = json.load(sys.stdin)
    json.dump(RUNNERS[plan["client"]](plan), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
