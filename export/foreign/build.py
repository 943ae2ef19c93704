"""``python -m export publish``: a user's model as a version exactly as rich as the built-in ones.

The user's signatures are saved as they are (same functions, same outputs); beside them the export adds
``contract``, ``classify`` (``[-1, K]`` scores; a softmax only for declared logits) or ``regress`` (one number
per row) unless the model has its own, and ``serving_default`` when the model has none. Everything else -
staging, method names, frozen graph, warm-up, card, the C++ loader gate against the SOURCE model's own
outputs, the atomic rename - is the built-in models' path (``export.api.write_version``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export import explain, signatures
from export.errors import InvalidSource
from export.foreign import evaluation, graph, samples
from export.foreign.contract import Declared, Inferred, infer, input_specs
from export.foreign.source import Source, load
from export.publish import resolve_version, staging
from export.servable import CLASSIFY_METHOD, CONTRACT_SIGNATURE, REGRESS_METHOD, SEED, Servable

__all__ = ["Request", "Trained", "build", "publish"]

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
EXAMPLE_METHODS = (CLASSIFY_METHOD, REGRESS_METHOD)
REFERENCE_ROWS = 5000  # --eval rows kept as the drift profile's reference (the built-in models keep 5000 too)
TABLE_OPS = ("HashTable", "LookupTable", "MutableHashTable", "MutableDenseHashTable", "InitializeTable")


@dataclass
class Trained:
    """What a training run adds to the card (``train-images``): metrics, curves and extra files."""

    metrics: dict[str, float]
    history: dict[str, list[float]]
    training: dict[str, Any]
    data: dict[str, Any]
    curves: dict[str, tuple[str, ...]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    card_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    """One ``publish`` call: the SOURCE, where it goes, and what the user states about it."""

    source: Path
    name: str
    models_dir: Path = Path("models")
    version: str | int = "auto"
    declared: Declared = field(default_factory=Declared)
    samples: Sequence[Path] = ()
    eval: Path | None = None
    trained: Trained | None = None
    tflite_quantize: bool = False  # also model.int8.tflite (export.tflite)


def _cast(parsed: dict[str, tf.Tensor], specs: dict[str, tf.TensorSpec]) -> dict[str, tf.Tensor]:
    return {name: tf.cast(parsed[name], spec.dtype) for name, spec in specs.items()}


def _example_signature(
    inferred: Inferred, function: Any, labels: list[str], logits: bool
) -> tuple[str, Any, str]:
    """``classify`` or ``regress``: parse the examples by the contract's inputs, run the serving function."""
    specs = input_specs(function)
    spec = samples.parse_spec(inferred.contract["inputs"])
    score = inferred.score_output

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = _cast(tf.io.parse_example(serialized, spec), specs)
        result = function(**parsed)[score]
        if inferred.task == "regression":
            return {"outputs": tf.reshape(tf.cast(result, tf.float32), [-1])}
        scores = tf.cast(result, tf.float32)
        return signatures.class_outputs(labels, tf.nn.softmax(scores) if logits else scores)

    if inferred.task == "regression":
        return "regress", signatures.example_function(parse), REGRESS_METHOD
    return "classify", signatures.example_function(parse), CLASSIFY_METHOD


def _example_spec(source: Source, key: str) -> dict[str, tf.io.FixedLenFeature] | None:
    """The tf.Example features a user's signature parses, when it takes one string input and parses it."""
    function = source.signatures[key]
    specs = list(input_specs(function).values())
    if len(specs) != 1 or specs[0].dtype != tf.string:
        return None
    if source.graph_only:
        (info,) = function.signature.inputs.values()
        return graph.example_spec(source.graph_def, info.name.split(":")[0])
    return graph.example_spec(function.graph.as_graph_def())


def _examples_for(spec: dict[str, tf.io.FixedLenFeature], rows: int) -> list[bytes]:
    """Deterministic tf.Examples with every dense feature a user's own signature parses."""
    rng = np.random.default_rng(SEED)
    out = []
    for row in range(rows):
        feature = {}
        for key, wanted in spec.items():
            size = int(np.prod(wanted.shape or [1]))
            if wanted.dtype == tf.string:
                text = samples.TEXTS[row % len(samples.TEXTS)].encode()
                feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text] * size))
            elif wanted.dtype.is_integer:
                ints = rng.integers(0, 10, size).tolist()
                feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=ints))
            else:
                floats = rng.random(size).astype(np.float32).tolist()
                feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=floats))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def _frozen(function: Any) -> tuple[Any, str]:
    """The serving function when it can fold into a self-contained GraphDef, else None and why not."""
    graph_def = function.graph.as_graph_def()
    ops = {n.op for n in graph_def.node} | {n.op for f in graph_def.library.function for n in f.node_def}
    tables = sorted(op for op in ops if op.startswith(TABLE_OPS))
    if tables:
        return None, (
            f"no frozen graph: the serving graph uses lookup tables ({', '.join(tables)}), which a frozen "
            "GraphDef cannot initialise; serve the SavedModel"
        )
    return function, "the serving signature with every variable folded into a constant"


def _inputs_of_own(source: Source, key: str) -> dict[str, np.ndarray]:
    entries = {
        name: {
            "dtype": spec.dtype.name,
            "shape": [-1 if d is None else d for d in spec.shape.as_list()],
            "kind": "text" if spec.dtype == tf.string else "numeric",
        }
        for name, spec in input_specs(source.signatures[key]).items()
    }
    return samples.generate(entries)


def build(request: Request, source: Source) -> Servable:
    """Infer the contract of the loaded and checked SOURCE and assemble everything a version needs."""
    declared = request.declared
    inferred = infer(source, request.name, declared)
    contract = inferred.contract
    serving = source.signatures[inferred.signature]
    if request.samples:
        predict_inputs = samples.from_files(list(request.samples), contract["inputs"])
    else:
        predict_inputs = samples.generate(contract["inputs"])
    sigs: dict[str, Any] = dict(source.signatures)
    methods = dict(source.method_names)
    signature_inputs: dict[str, dict[str, np.ndarray]] = {}
    example_rows: list[bytes] = samples.examples(predict_inputs)
    # The model's own classify / regress (TF1, Estimator, TF Serving's testdata): any signature but the
    # serving one that parses tf.Examples; kept as it is and fed the features it parses.
    example_specs = {
        key: spec
        for key in sigs
        if key != inferred.signature and (spec := _example_spec(source, key)) is not None
    }
    for key in sigs:
        if key != inferred.signature and key not in example_specs:
            signature_inputs[key] = _inputs_of_own(source, key)
    rows = len(next(iter(predict_inputs.values())))
    notes: list[str] = []
    for key, spec in example_specs.items():
        (input_key,) = input_specs(sigs[key])
        signature_inputs[key] = {input_key: np.asarray(_examples_for(spec, rows), dtype=object)}
        part = "classify" if methods.get(key) == CLASSIFY_METHOD else "regress"
        wanted = (part == "classify") == (inferred.task == "classification")
        if methods.get(key) in EXAMPLE_METHODS and part not in contract and wanted:
            contract[part] = {"signature": key, "feature": sorted(spec)[0]}
            example_rows = list(signature_inputs[key][input_key])
    if "classify" in contract or "regress" in contract:
        pass  # the model's own
    elif source.graph_only and inferred.task in ("classification", "regression"):
        notes.append("no classify / regress signature added: a TF1 graph is published as it is")
    elif inferred.task in ("classification", "regression"):
        key, function, method = _example_signature(inferred, serving, contract["labels"], declared.logits)
        source.attach(key, function)
        sigs[key], methods[key] = function.get_concrete_function(), method
        part = "classify" if method == CLASSIFY_METHOD else "regress"
        contract[part] = {"signature": key}
        if part == "classify":
            contract[part]["feature"] = next(iter(contract["inputs"]))
    if source.keras_model is not None and (found := explain.explain_for(source.keras_model, contract)):
        function, contract["explain"] = found  # integrated gradients, for a differentiable Keras model
        source.attach("explain", function)
        sigs["explain"] = function.get_concrete_function()
        signature_inputs["explain"] = explain.feeds(predict_inputs, classes=contract["task"] != "regression")
    alias = None
    if "serving_default" not in sigs:
        alias = inferred.signature
        sigs["serving_default"] = serving  # TF Serving's default key answers as the serving signature does
        signature_inputs["serving_default"] = predict_inputs
    write_saved_model = None
    if source.graph_only:
        text = json.dumps(contract)
        sigs[CONTRACT_SIGNATURE] = lambda: {"contract": tf.constant(text)}
        path = source.path
        write_saved_model = lambda directory: graph.write(path, directory, text, alias)  # noqa: E731
        frozen_source, frozen_note = None, "no frozen graph: a TF1 graph is published as it is"
    else:
        contract_fn = signatures.contract_function(contract)
        source.attach(CONTRACT_SIGNATURE, contract_fn)
        sigs[CONTRACT_SIGNATURE] = contract_fn.get_concrete_function()
        frozen_source, frozen_note = _frozen(serving)
    metrics, eval_data, eval_inputs = (
        evaluation.evaluate(request.eval, serving, inferred) if request.eval is not None else ({}, {}, {})
    )
    # --eval data is the drift profile's reference (export.profile), as the training split is for built-in
    # models; a TF1 graph published as it is has no callable serving_default here to profile outputs with.
    reference = {} if source.graph_only else {k: v[:REFERENCE_ROWS] for k, v in eval_inputs.items()}
    trained = request.trained or Trained(metrics={}, history={}, training={}, data={})
    metrics.update(trained.metrics)
    return Servable(
        name=request.name,
        task=contract["task"],
        labels=contract["labels"],
        module=source.module(),
        signatures=sigs,
        method_names=methods,
        contract=contract,
        frozen_source=frozen_source,
        frozen_note=frozen_note,
        predict_inputs=predict_inputs,
        examples=example_rows,
        metrics=metrics,
        history=trained.history,
        training=trained.training,
        data={"source": str(request.source), "sha256": source.sha256, **eval_data, **trained.data},
        curves=trained.curves,
        files=trained.files,
        write_saved_model=write_saved_model,
        frozen_optional=True,
        parameters=_parameters(source),
        predict_signature=inferred.signature,
        score_output=inferred.score_output,
        logits=declared.logits,
        signature_inputs=signature_inputs,
        reference=reference,
        own_signatures=frozenset(source.signatures),
        card_fields={
            "source": {
                "path": str(Path(request.source).resolve()),
                "kind": source.kind,
                "sha256": source.sha256,
            },
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
            "contract_fields": inferred.provenance,
            "notes": notes,
            **trained.card_fields,
        },
    )


def _parameters(source: Source) -> int:
    if source.keras_model is not None:
        return int(source.keras_model.count_params())
    index = source.path / "variables" / "variables.index"
    if not index.exists():
        return 0
    return int(sum(np.prod(shape) for _, shape in tf.train.list_variables(str(index.with_suffix("")))))


def publish(request: Request) -> Path:
    """Publish ``request.source`` as ``models_dir/name/<version>``; return the published directory. Nothing
    is published (and nothing is left behind) unless every check passed."""
    from export.api import write_version

    if not MODEL_NAME.fullmatch(request.name):
        raise InvalidSource(
            "--name", f"{request.name!r} is not a model name (letters, digits, '.', '_', '-')"
        )
    resolve_version(Path(request.models_dir) / request.name, request.version)  # before the work
    source = load(request.source)
    try:
        with staging(Path(request.models_dir), request.name, request.version) as stage:
            servable = build(request, source)
            write_version(servable, stage.path, stage.version, tflite_quantize=request.tflite_quantize)
            published = stage.commit()
    finally:
        source.close()
    print(servable.summary())
    print(f"   published {published}")
    return published
