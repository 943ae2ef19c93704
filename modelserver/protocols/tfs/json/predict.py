"""The REST predict body, as TensorFlow Serving's ``util/json_tensor.cc`` reads and writes it.

* Request: ``{"signature_name"?: str, "instances": [...]}`` (row format) or ``{"inputs": ...}`` (columnar).
  Row format with one signature input: each element is that input's value for one row. With several inputs:
  each element is an object ``{input_name: value}`` and all inputs share dim 0. Columnar: a bare value/list
  (one input) or an object ``{input_name: tensor}``. Each tensor is converted by ``json_tensor`` against the
  signature's dtypes, with TensorFlow Serving's error messages.
* Reply: ``{"predictions": ...}`` for a row request (one output: the bare list; several: one object per row),
  ``{"outputs": ...}`` for a columnar one (one output: the bare tensor; several: ``{name: tensor}``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserver.errors import InvalidArgument
from modelserver.protocols.tfs.json.tensor import (
    careful_tensor,
    fast_tensor,
    json_dtype,
    json_to_tensor,
    tensor_to_json,
)
from modelserver.protocols.tfs.json.text import (
    dumps,
    format_error,
    is_b64_object,
    no_gc,
    parse_json_object,
    signature_name_of,
    value_to_string,
)

__all__ = ["JsonFormat", "PredictJson", "predict_response_json"]

_PREDICT_KEYS = frozenset({"signature_name", "instances", "inputs"})  # all TF Serving reads from the body


class JsonFormat(enum.Enum):
    """Which request layout a predict call used; it decides the reply layout."""

    ROW = "instances"
    COLUMNAR = "inputs"


def _status_text(exc: InvalidArgument) -> str:
    return f"INVALID_ARGUMENT: {exc.message}"  # absl::Status::ToString(), nested in TF Serving's messages


@dataclass(frozen=True)
class PredictJson:
    """A parsed predict body. ``from_body`` checks the envelope; ``tensors`` converts the inputs once the
    caller has looked up the signature's input dtypes (TF Serving's FillPredictRequestFromJson in two steps,
    because the lookup needs the model, which needs the signature name from the body)."""

    doc: dict[str, Any]
    signature_name: str
    may_hold_bools: bool

    @classmethod
    def from_body(cls, body: bytes) -> PredictJson:
        doc = parse_json_object(body, _PREDICT_KEYS)
        # A bool literal anywhere means numeric fast paths cannot tell true from 1: walk carefully then.
        may_hold_bools = b"true" in body or b"false" in body
        return cls(doc, signature_name_of(doc), may_hold_bools)

    def tensors(
        self, input_dtypes: Mapping[str, int], signature_name: str
    ) -> tuple[JsonFormat, dict[str, np.ndarray]]:
        """Convert to ``{input_name: ndarray}``; ``input_dtypes`` maps each signature input to its DataType
        (``signature_name`` only names it in errors)."""
        if not input_dtypes:
            raise InvalidArgument(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        doc = self.doc
        has_instances, has_inputs = "instances" in doc, "inputs" in doc
        if has_instances and has_inputs:
            raise format_error(
                doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
            )
        if has_instances:
            instances = doc["instances"]
            if not isinstance(instances, list):
                raise format_error(doc, "Expecting 'instances' to be an list/array")
            if not instances:
                raise format_error(doc, "No values in 'instances' array")
            return JsonFormat.ROW, self._from_instances(instances, input_dtypes)
        if has_inputs:
            return JsonFormat.COLUMNAR, self._from_inputs(doc["inputs"], input_dtypes)
        raise InvalidArgument("Missing 'inputs' or 'instances' key")

    def _from_inputs(self, value: Any, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
        if not isinstance(value, dict) or is_b64_object(value):
            if len(input_dtypes) > 1:
                raise InvalidArgument(
                    "inputs is a plain value/list, but expecting an object as multiple input tensors "
                    "required as per tensorinfo_map"
                )
            ((name, dtype_enum),) = input_dtypes.items()
            return {name: json_to_tensor(value, dtype_enum, may_hold_bools=self.may_hold_bools)}
        tensors: dict[str, np.ndarray] = {}
        for name, dtype_enum in input_dtypes.items():
            if name not in value:
                raise InvalidArgument(f"Missing named input: {name} in 'inputs' object.")
            tensors[name] = json_to_tensor(value[name], dtype_enum, may_hold_bools=self.may_hold_bools)
        return tensors

    def _from_instances(self, instances: list[Any], input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
        named = _is_named_row(instances[0])
        if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
            raise InvalidArgument(
                "instances is a plain list, but expecting list of objects as multiple input tensors "
                "required as per tensorinfo_map"
            )
        names = set(input_dtypes)
        if named and all(_is_named_row(row) and row.keys() == names for row in instances):
            columns = {name: [row[name] for row in instances] for name in input_dtypes}
        elif not named and not any(_is_named_row(row) for row in instances):
            columns = {next(iter(input_dtypes)): instances}
        else:
            columns = None
        if columns is not None:
            fast: dict[str, np.ndarray] = {}
            for name, column in columns.items():
                dtype = json_dtype(input_dtypes[name], column)
                array = fast_tensor(column, dtype, self.may_hold_bools)
                if array is None or array.ndim == 0:
                    break
                fast[name] = array
            else:
                return fast
        return _careful_instances(instances, input_dtypes, named)


def _is_named_row(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64_object(value)


def _careful_instances(
    instances: list[Any], input_dtypes: Mapping[str, int], named: bool
) -> dict[str, np.ndarray]:
    """TF Serving's FillTensorMapFromInstancesList, element by element, with its messages."""
    rows: dict[str, list[np.ndarray]] = {}
    first_shape: dict[str, tuple[int, ...]] = {}
    names = sorted(input_dtypes)

    def add(item: Any, name: str) -> None:
        if name not in input_dtypes:
            raise InvalidArgument(f"JSON object: does not have named input: {name}")
        tensor = careful_tensor(item, json_dtype(input_dtypes[name], item))
        if name not in first_shape:
            first_shape[name] = tensor.shape
        elif first_shape[name] != tensor.shape:
            expected = first_shape[name]
            if math.prod(expected) != tensor.size:
                raise InvalidArgument(f"Expecting tensor size: {math.prod(expected)} but got: {tensor.size}")
            raise InvalidArgument(
                f"Expecting shape {_shape_text(expected)} but got: {_shape_text(tensor.shape)}"
            )
        rows.setdefault(name, []).append(tensor)

    for index, row in enumerate(instances):
        if named:
            if not _is_named_row(row):
                raise InvalidArgument(f"Expecting object but got list at item {index} of input list")
            for key, item in row.items():
                try:
                    add(item, key)
                except InvalidArgument as exc:
                    raise InvalidArgument(
                        f"Failed to process element: {index} key: {key} of 'instances' list."
                        f" Error: {_status_text(exc)}"
                    ) from None
            if set(row) != set(names):
                raise InvalidArgument(
                    f"Failed to process element: {index} of 'instances' list. JSON object:"
                    f" {value_to_string(row)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_named_row(row):
                raise InvalidArgument(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(row, next(iter(input_dtypes)))
            except InvalidArgument as exc:
                raise InvalidArgument(
                    f"Failed to process element: {index} of 'instances' list. Error: {_status_text(exc)}"
                ) from None
    return {name: np.stack(tensors) for name, tensors in rows.items()}


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def predict_response_json(outputs: Mapping[str, np.ndarray], fmt: JsonFormat) -> bytes:
    """TF Serving's MakeJsonFromTensors: ``predictions`` for row requests, ``outputs`` for columnar ones."""
    with no_gc():
        return _predict_response_json(outputs, fmt)


def _predict_response_json(outputs: Mapping[str, np.ndarray], fmt: JsonFormat) -> bytes:
    if not outputs:
        raise InvalidArgument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt is JsonFormat.COLUMNAR:
        if len(names) == 1:
            return dumps({"outputs": tensor_to_json(names[0], outputs[names[0]])})
        return dumps({"outputs": {name: tensor_to_json(name, outputs[name]) for name in names}})
    batch = -1
    for name in names:
        tensor = outputs[name]
        if tensor.ndim == 0:
            raise InvalidArgument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and tensor.shape[0] != batch:
            raise InvalidArgument(
                f"Tensor name: {name} has inconsistent batch size: {tensor.shape[0]} expecting: {batch}"
            )
        batch = tensor.shape[0]
    if len(names) == 1:
        return dumps({"predictions": tensor_to_json(names[0], outputs[names[0]])})
    columns = [tensor_to_json(name, outputs[name]) for name in names]
    return dumps({"predictions": [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]})
