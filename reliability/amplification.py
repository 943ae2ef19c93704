"""Small requests that ask the model server for large memory (issue 25): 1.5 M one-byte strings (gRPC Predict,
REST predict as JSON strings and b64 objects, OIP infer) and tf.Example inputs (250,000 empty examples, a 1 MiB
context merged into 200). Each must be refused before it is decoded, with RssAnon under the bound."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reliability.measured import MIB, grpc_call, gzip_post, measured, string_tensor
from reliability.outcome import Outcome
from reliability.stack import Stack
from tfs_protos.tensorflow_serving.apis import classification_pb2, predict_pb2

__all__ = ["TINY_STRINGS", "examples", "string_tensors"]

TINY_STRINGS = 1_500_000


def string_tensors(stack: Stack, outcome: Outcome, count: int) -> dict[str, Any]:
    """``count`` one-byte strings, gzip-compressed: gRPC Predict ([1, count]), REST predict (JSON strings
    and b64 objects) and OIP infer. Each is refused before its strings are decoded."""
    figures: dict[str, Any] = {}
    cases: list[tuple[str, Callable[[], tuple[str, int]]]] = [
        (
            "grpc_predict",
            lambda: (grpc_call(stack, "Predict", _predict_strings(count)), 0),
        ),
        (
            "rest_json",
            lambda: _reply(
                gzip_post(f"{stack.rest_url}/v1/models/text:predict", {"instances": ["a"] * count})
            ),
        ),
        (
            "rest_b64",
            lambda: _reply(
                gzip_post(
                    f"{stack.rest_url}/v1/models/text:predict", {"instances": [{"b64": "YQ=="}] * count}
                )
            ),
        ),
        (
            "oip_infer",
            lambda: _reply(
                gzip_post(
                    f"{stack.rest_url}/v2/models/text/infer",
                    {
                        "inputs": [
                            {"name": "text", "shape": [count], "datatype": "BYTES", "data": ["a"] * count}
                        ]
                    },
                )
            ),
        ),
    ]
    for case, send in cases:
        name = f"strings_{case}"
        with measured(stack, outcome, name, figures):
            reply, size = send()
        figures[name].update({"reply": reply, "compressed_bytes": size or None})
        outcome.check(reply in ("INVALID_ARGUMENT", "400"), f"{name}: answered {reply}")
    return figures


def _predict_strings(count: int) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "text"
    request.inputs["text"].CopyFrom(string_tensor([b"a"] * count, [1, count]))
    return request


def _reply(result: tuple[int, int]) -> tuple[str, int]:
    return str(result[0]), result[1]


def examples(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """Classify with 250,000 empty examples (gRPC and REST) and with a 1 MiB context and 200 examples
    (TF Serving merges the context into every example): refused from their count and bytes."""
    figures: dict[str, Any] = {}

    def many() -> classification_pb2.ClassificationRequest:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "text"
        request.model_spec.signature_name = "classify"
        for _ in range(250_000):
            request.input.example_list.examples.add()
        return request

    def context() -> classification_pb2.ClassificationRequest:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "text"
        request.model_spec.signature_name = "classify"
        with_context = request.input.example_list_with_context
        with_context.context.features.feature["pad"].bytes_list.value.append(b"x" * MIB)
        for _ in range(200):
            with_context.examples.add()
        return request

    cases: list[tuple[str, Callable[[], tuple[str, int]]]] = [
        ("grpc_250k_empty", lambda: (grpc_call(stack, "Classify", many()), 0)),
        ("grpc_1mib_context_x200", lambda: (grpc_call(stack, "Classify", context()), 0)),
        (
            "rest_250k_empty",
            lambda: _reply(
                gzip_post(
                    f"{stack.rest_url}/v1/models/text:classify",
                    {"signature_name": "classify", "examples": [{}] * 250_000},
                )
            ),
        ),
    ]
    for case, send in cases:
        name = f"examples_{case}"
        with measured(stack, outcome, name, figures):
            reply, size = send()
        figures[name].update({"reply": reply, "compressed_bytes": size or None})
        outcome.check(reply in ("INVALID_ARGUMENT", "400"), f"{name}: answered {reply}")
    return figures
