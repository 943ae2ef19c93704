"""``model.tflite`` beside the SavedModel: what ``--prefer_tflite_model`` serves (TF Serving's TfLiteSession).

``write`` converts the staged version's ``serving_default`` with TensorFlow's TF Lite converter (float32,
builtin ops only: what LiteRT's interpreter runs without TensorFlow), embeds TF Serving's
``signature_defs_metadata`` (a FlexBuffer map of serialized SignatureDefs naming the TF Lite tensors, so the
model server reports the SavedModel's input and output names), runs the held-out rows through LiteRT and
compares every output with the SavedModel's within ``TOLERANCE``. The card gets a ``tflite`` section: the file,
its size and the largest difference - or, when the graph cannot be converted (e.g. string lookup tables) or
disagrees, why there is no ``model.tflite``. The export never fails because of TF Lite: the SavedModel is the
servable, the TF Lite file an alternative.

With ``quantize`` (``--tflite-quantize``) a second file, ``model.int8.tflite``, holds the int8 dynamic-range
quantized variant (``tf.lite.Optimize.DEFAULT``: weights int8, activations float), checked against the
SavedModel within ``QUANTIZED_BOUND`` (looser than float: quantization changes the numbers) and recorded in
the card's ``tflite.int8``. It never replaces ``model.tflite``: TF Serving serves exactly ``model.tflite``, and
that file answers like the SavedModel to float32 precision, so ``--prefer_tflite_model`` never changes the
answers silently; a user who wants the int8 answers opts in by publishing a version whose ``model.tflite`` is
the int8 file (docs/architecture.md, "TF Lite versions").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from export.card import CARD_FILE
from export.servable import Servable

__all__ = ["INT8_FILE", "QUANTIZED_BOUND", "TFLITE_FILE", "TOLERANCE", "convert", "convert_int8", "write"]

TFLITE_FILE = "model.tflite"
INT8_FILE = "model.int8.tflite"
# float32 kernels of TF Lite (XNNPACK) vs TensorFlow's: the same math in another summation order, so outputs
# agree to float32 precision: |tflite - saved_model| <= TOLERANCE + RELATIVE * |saved_model|.
TOLERANCE = 1e-4
RELATIVE = 1e-5
SIGNATURE = "serving_default"
_METADATA = "signature_defs_metadata"  # TF Serving reads it (tensorflow/lite/tools/signature)
_OPT_IN = (
    "beside model.tflite, not instead: TF Serving serves exactly model.tflite, which answers like the SavedModel;"
    " to serve the int8 answers, publish a version whose model.tflite is this file"
)
# The int8 variant's bound. Classification (scores in rows): the top class agrees with the SavedModel's on at
# least 99 % of the held-out rows and no score moves by more than 0.05. Otherwise (regression, any other float
# output): RMSE against the SavedModel at most 5 % of the SavedModel output's standard deviation over the rows,
# or at most TOLERANCE (float32's own bound) for an output that hardly varies over them.
QUANTIZED_BOUND = {"top1_agreement_min": 0.99, "max_score_difference": 0.05, "rmse_over_std_max": 0.05}


def _why(exc: BaseException) -> str:
    """The converter's error, short: the ops it has no builtin for, else its first line."""
    text = str(exc).strip()
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return "no TF Lite builtin for " + ", ".join(ops)
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _with_signature_defs(model: bytes, signature: meta_graph_pb2.SignatureDef) -> bytes:
    """``model`` with TF Serving's signature_defs_metadata holding ``signature`` as serving_default."""
    builder = flexbuffers.Builder()
    with builder.Map():
        builder.Key(SIGNATURE)
        builder.Blob(signature.SerializeToString())
    blob = bytes(builder.Finish())
    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(blob, dtype=np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = _METADATA
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = [*(tree.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))


def _signature(interpreter: Any) -> meta_graph_pb2.SignatureDef:
    """serving_default as the SavedModel names it, pointing at the TF Lite tensors."""
    details = interpreter.get_signature_runner(SIGNATURE)
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for infos, side in (
        (signature.inputs, details.get_input_details()),
        (signature.outputs, details.get_output_details()),
    ):
        for alias, detail in side.items():
            info = infos[alias]
            info.name = interpreter.get_tensor_details()[detail["index"]]["name"]
            info.dtype = tf.as_dtype(detail["dtype"]).as_datatype_enum
            for size in detail["shape_signature"]:
                info.tensor_shape.dim.add(size=int(size))
    return signature


def _run(
    model: bytes, signature: meta_graph_pb2.SignatureDef, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The held-out rows through LiteRT's interpreter, fed and fetched by the embedded SignatureDef."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    for alias, array in inputs.items():
        interpreter.resize_tensor_input(index[signature.inputs[alias].name], list(array.shape), strict=False)
    interpreter.allocate_tensors()
    for alias, array in inputs.items():
        interpreter.set_tensor(index[signature.inputs[alias].name], np.ascontiguousarray(array))
    interpreter.invoke()
    return {alias: interpreter.get_tensor(index[info.name]) for alias, info in signature.outputs.items()}


def _convert(directory: Path, *, quantize: bool) -> tuple[bytes, meta_graph_pb2.SignatureDef] | str:
    """serving_default as a TF Lite flatbuffer with TF Serving's signature metadata, or why it cannot be."""
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(directory), signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
        model = converter.convert()
    except Exception as exc:  # the converter raises ConverterError, ValueError, ...
        return f"TF Lite's converter cannot convert {SIGNATURE}: {_why(exc)}"
    from ai_edge_litert.interpreter import Interpreter

    signature = _signature(Interpreter(model_content=model))
    return _with_signature_defs(model, signature), signature


def convert(
    directory: Path, inputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Write ``directory/model.tflite`` when the SavedModel converts and agrees on ``inputs``; the card section."""
    converted = _convert(directory, quantize=False)
    if isinstance(converted, str):
        return {"file": None, "reason": converted}
    model, signature = converted
    got = _run(model, signature, inputs)
    worst, ratio = 0.0, 0.0  # largest difference, and largest difference / its bound
    for alias, want in expected.items():
        if got[alias].shape != want.shape:
            return {
                "file": None,
                "reason": f"output {alias}: shape {list(got[alias].shape)}, SavedModel {list(want.shape)}",
            }
        if want.dtype.kind == "f":
            difference = np.abs(got[alias].astype(np.float64) - want.astype(np.float64))
            bound = TOLERANCE + RELATIVE * np.abs(want.astype(np.float64))
            worst = max(worst, float(np.max(difference, initial=0.0)))
            ratio = max(ratio, float(np.max(difference / bound, initial=0.0)))
        elif not np.array_equal(got[alias], want):
            return {"file": None, "reason": f"output {alias} differs from the SavedModel's"}
    rows = int(next(iter(inputs.values())).shape[0]) if inputs else 0
    if ratio > 1.0:
        return {
            "file": None,
            "reason": f"differs from the SavedModel by {worst:.3g} (bound {TOLERANCE:g} + {RELATIVE:g} x |value|)",
            "rows": rows,
        }
    (directory / TFLITE_FILE).write_bytes(model)
    return {
        "file": TFLITE_FILE,
        "bytes": len(model),
        "rows": rows,
        "max_abs_difference": worst,
        "bound": f"{TOLERANCE:g} + {RELATIVE:g} x |value|",
    }


def _is_scores(array: np.ndarray) -> bool:
    """Rows of class scores: 2-D, several classes, each row in [0, 1] summing to 1 (softmax / probabilities)."""
    if array.ndim != 2 or array.shape[1] < 2 or array.dtype.kind != "f":
        return False
    return bool(np.all(array >= 0) and np.all(array <= 1) and np.allclose(array.sum(axis=1), 1, atol=1e-3))


def convert_int8(
    directory: Path, inputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Write ``directory/model.int8.tflite`` when the int8 dynamic-range variant stays within
    ``QUANTIZED_BOUND`` of the SavedModel on ``inputs``; the card section (``tflite.int8``)."""
    bound = QUANTIZED_BOUND
    converted = _convert(directory, quantize=True)
    if isinstance(converted, str):
        return {"file": None, "reason": converted}
    model, signature = converted
    got = _run(model, signature, inputs)
    checks: dict[str, dict[str, float]] = {}
    failures: list[str] = []
    for alias, want in expected.items():
        have = got[alias]
        if have.shape != want.shape:
            failures.append(f"output {alias}: shape {list(have.shape)}, SavedModel {list(want.shape)}")
        elif want.dtype.kind != "f":
            if not np.array_equal(have, want):
                failures.append(f"output {alias} differs from the SavedModel's")
        elif _is_scores(want):
            agreement = float(np.mean(np.argmax(have, axis=1) == np.argmax(want, axis=1)))
            moved = float(np.max(np.abs(have.astype(np.float64) - want), initial=0.0))
            checks[alias] = {"top1_agreement": agreement, "max_score_difference": moved}
            if agreement < bound["top1_agreement_min"] or moved > bound["max_score_difference"]:
                failures.append(f"output {alias}: top-1 agreement {agreement:.3f}, scores moved {moved:.3g}")
        else:
            error = have.astype(np.float64) - want.astype(np.float64)
            rmse = float(np.sqrt(np.mean(np.square(error)))) if error.size else 0.0
            std = float(np.std(want.astype(np.float64))) if want.size else 0.0
            ratio = rmse / std if std > 0 else (0.0 if rmse == 0 else float("inf"))
            checks[alias] = {"rmse": rmse, "saved_model_std": std, "rmse_over_std": ratio}
            if ratio > bound["rmse_over_std_max"] and rmse > TOLERANCE:
                failures.append(f"output {alias}: RMSE {rmse:.3g} is {ratio:.3g} x the output's std")
    rows = int(next(iter(inputs.values())).shape[0]) if inputs else 0
    section: dict[str, Any] = {"rows": rows, "bound": dict(bound), "checks": checks}
    if failures:
        return {"file": None, "reason": "outside the int8 bound: " + "; ".join(failures), **section}
    (directory / INT8_FILE).write_bytes(model)
    return {
        "file": INT8_FILE,
        "bytes": len(model),
        "quantization": "dynamic-range int8 weights",
        "serving": _OPT_IN,
        **section,
    }


def _expected(servable: Servable, directory: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The SavedModel's serving_default on ``inputs``: the trained function, else the version as written (a
    user's TF1 graph is written as it is, not from ``servable.signatures``)."""
    function = servable.signatures.get(SIGNATURE) if servable.write_saved_model is None else None
    if function is None:
        function = tf.saved_model.load(str(directory)).signatures[SIGNATURE]
    outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def write(
    servable: Servable, directory: Path, card: dict[str, Any], *, quantize: bool = False
) -> dict[str, Any]:
    """The export's one call (``export.api.write_version``, for built-in and published models alike):
    convert, check against the SavedModel on the held-out rows, record in the card; with ``quantize`` the
    int8 variant too. Never raises for TF Lite's sake: what cannot be done is a reason in the card."""
    inputs = {k: np.asarray(v) for k, v in servable.predict_inputs.items()}
    try:
        expected = _expected(servable, directory, inputs)
        section = convert(directory, inputs, expected)
        if quantize:
            if section["file"]:
                section["int8"] = convert_int8(directory, inputs, expected)
                if section["int8"]["file"] and section["int8"]["bytes"] >= section["bytes"]:
                    section["int8"]["note"] = "no weight tensor large enough to quantize (1024+ elements)"
            else:
                section["int8"] = {"file": None, "reason": "no float model.tflite: " + section["reason"]}
    except Exception as exc:  # e.g. string inputs LiteRT cannot be fed; the SavedModel is still published
        for name in (TFLITE_FILE, INT8_FILE):
            (directory / name).unlink(missing_ok=True)
        section = {"file": None, "reason": f"no TF Lite check possible: {_why(exc)}"}
    card["tflite"] = section
    for key, part in (("tflite", section), ("tflite_int8", section.get("int8") or {})):
        if part.get("file"):
            card["sizes"][key] = part["bytes"]
            card["sizes"]["version_total"] += part["bytes"]
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def convert_published(
    directory: Path, rows: int = 8, seed: int = 0, *, quantize: bool = False
) -> dict[str, Any]:
    """``convert`` (and with ``quantize`` ``convert_int8``) for a version already published (no trained model
    at hand, e.g. the bench's copy): random rows of ``serving_default``'s input types, checked against the
    SavedModel's own answers to them."""
    function = tf.saved_model.load(str(directory)).signatures[SIGNATURE]
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for name, spec in function.structured_input_signature[1].items():
        shape = [rows if i == 0 else (d or 1) for i, d in enumerate(spec.shape)]
        if spec.dtype.is_floating:
            inputs[name] = rng.random(shape).astype(spec.dtype.as_numpy_dtype)
        elif spec.dtype.is_integer:
            inputs[name] = rng.integers(0, 10, shape).astype(spec.dtype.as_numpy_dtype)
        else:
            return {"file": None, "reason": f"input {name} is {spec.dtype.name}: no random rows for it"}
    outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
    expected = {k: v.numpy() for k, v in outputs.items()}
    section = convert(directory, inputs, expected)
    if quantize and section["file"]:
        section["int8"] = convert_int8(directory, inputs, expected)
    return section
