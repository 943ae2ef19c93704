"""``python -m export publish``: models this project did not design (tests/export/own_models.py) become
versions as rich as the built-in ones; the published serving signature, run by TensorFlow's C++ loader,
answers as the source model does; the contract says what the model takes; refusals change nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from export.__main__ import main
from export.foreign import samples
from export.foreign.build import Request, publish
from export.foreign.contract import Declared
from modelserver.observe.profile import PROFILE_FILE
from modelserver.runtime.session import Session
from tests.export import own_models

pytestmark = pytest.mark.slow

TOLERANCE = 1e-5


class _Cpp:
    """A published version loaded by TensorFlow's C++ loader (what TF Serving runs); signatures by key."""

    def __init__(self, version: Path) -> None:
        self.session = Session.load(version)
        self.defs = meta_graph_pb2.MetaGraphDef.FromString(self.session.meta_graph_def).signature_def

    def run(self, key: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signature = self.defs[key]
        feeds = {signature.inputs[n].name: (v, signature.inputs[n].dtype) for n, v in inputs.items()}
        names = sorted(signature.outputs)
        outputs = self.session.run(feeds, [signature.outputs[n].name for n in names])
        return dict(zip(names, outputs, strict=True))


def _publish(source: Path, repo: Path, name: str, **declared: Any) -> tuple[Path, dict[str, Any]]:
    version = publish(Request(source=source, name=name, models_dir=repo, declared=Declared(**declared)))
    return version, json.loads((version / "model_card.json").read_text())


def _check_serving(
    version: Path, card: dict[str, Any], predict: own_models.Predict, *, logits: bool = False
) -> None:
    """The C++ gate passed on every signature, and the published serving signature equals the source."""
    contract = card["contract"]
    assert set(card["serving_check"]["signatures"]) == set(card["signatures"])
    inputs = samples.generate(contract["inputs"], rows=3)
    key, output = contract["predict"]["signature"], contract["predict"]["outputs"][0]
    want = predict(inputs)
    cpp = _Cpp(version)
    try:
        np.testing.assert_allclose(cpp.run(key, inputs)[output], want, rtol=0, atol=TOLERANCE)
        examples = {"inputs": np.asarray(samples.examples(inputs), dtype=object)}
        if contract.get("classify", {}).get("signature") == "classify":  # built by the export
            scores = cpp.run("classify", examples)["scores"]
            if logits:
                want = np.exp(want - want.max(axis=1, keepdims=True))
                want = want / want.sum(axis=1, keepdims=True)
            np.testing.assert_allclose(scores, want, rtol=0, atol=TOLERANCE)
        if contract.get("regress", {}).get("signature") == "regress":
            values = cpp.run("regress", examples)["outputs"]
            np.testing.assert_allclose(values, want.reshape(-1), rtol=0, atol=TOLERANCE)
        assert json.loads(cpp.run("contract", {})["contract"][()].decode()) == contract
    finally:
        cpp.session.close()


ONLY = "*"  # the model's only input, whatever its name (Keras export names it keras_tensor_N)
IMAGE = {"kind": "image", "height": 32, "width": 32, "channels": 3, "shape": [-1, 32, 32, 3]}

# builder, declared flags, expected contract inputs (subset), expected top-level contract fields (subset)
CASES: dict[str, tuple[Callable[..., Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "mobilenet_uint8_rescaling": (
        lambda d: own_models.mobilenet_keras(d, uint8=True, rescaling=True),
        {"labels": ["cat", "dog", "fox", "owl"]},
        {"image": {**IMAGE, "dtype": "uint8", "range": [0.0, 255.0], "resize": "stretch"}},
        {"task": "image_classification", "labels": ["cat", "dog", "fox", "owl"]},
    ),
    "efficientnet_float_rescaling_inside": (
        own_models.efficientnet_keras,
        {"resize": "crop"},
        {ONLY: {**IMAGE, "dtype": "float32", "range": [0.0, 255.0], "resize": "crop"}},
        {"task": "image_classification", "labels": ["0", "1", "2"]},
    ),
    "mobilenet_float_plain_export_logits": (
        own_models.mobilenet_exported,
        {"logits": True, "input_range": (-1.0, 1.0)},
        {ONLY: {**IMAGE, "dtype": "float32", "range": [-1.0, 1.0], "resize": "stretch"}},
        {
            "task": "image_classification",
            "predict": {"signature": "serving_default", "outputs": ["output_0"]},
        },
    ),
    "grayscale_h5": (
        own_models.grayscale_h5,
        {},
        {"image": {"kind": "image", "dtype": "float32", "channels": 1, "height": 28, "range": [0.0, 1.0]}},
        {"task": "image_classification", "labels": ["0", "1", "2"]},
    ),
    "text": (
        own_models.text_keras,
        {"labels": ["ham", "spam"]},
        {"message": {"kind": "text", "dtype": "string", "shape": [-1, 1]}},
        {
            "task": "text_classification",
            "labels": ["ham", "spam"],
            "classify": {"signature": "classify", "feature": "message"},
        },
    ),
    "tabular": (
        own_models.tabular_keras,
        {},
        {
            "rooms": {"kind": "numeric", "dtype": "float32", "shape": [-1, 1]},
            "income": {"kind": "numeric", "dtype": "float32", "shape": [-1, 1]},
        },
        {"task": "regression", "regress": {"signature": "regress"}, "labels": []},
    ),
    "tf1_classify": (
        own_models.tf1_classifier,
        {"labels": ["setosa", "versicolor", "virginica"]},
        {"x": {"kind": "numeric", "dtype": "float32", "shape": [-1, 4]}},
        {
            "task": "classification",
            "predict": {"signature": "scores", "outputs": ["scores"]},
            "classify": {"signature": "classify_iris", "feature": "x"},
        },
    ),
    "tfs_testdata_half_plus_two_tf1": (
        own_models.tfs_half_plus_two,
        {},
        {"x": {"kind": "numeric", "dtype": "float32", "shape": [-1, 1]}},
        {"task": "regression", "regress": {"signature": "regress_x_to_y", "feature": "x"}},
    ),
    "tf_module_custom_names": (
        own_models.custom_module,
        {},
        {"features": {"kind": "numeric", "dtype": "float32", "shape": [-1, 3]}},
        {"task": "regression", "predict": {"signature": "price", "outputs": ["price"]}},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_publish_own_model(case: str, tmp_path: Path) -> None:
    build, declared, inputs, fields = CASES[case]
    source, predict = build(tmp_path)
    version, card = _publish(source, tmp_path / "models", case.replace("_", "-"), **declared)
    contract = card["contract"]
    for name, expected in inputs.items():
        entry = contract["inputs"][name] if name != ONLY else next(iter(contract["inputs"].values()))
        assert expected.items() <= entry.items(), entry
    for key, expected in fields.items():
        assert contract[key] == expected
    assert contract["source"]["kind"] == ("keras" if source.suffix in (".keras", ".h5") else "saved_model")
    assert card["source"]["sha256"] == contract["source"]["sha256"]
    assert card["versions"]["tensorflow"] and card["contract_fields"]
    assert (version / "labels.txt").exists() == bool(contract["labels"])
    assert card["warmup"]["records"] >= 3
    # A differentiable Keras model with one float input is published with its explain signature (gated).
    one_float = len(contract["inputs"]) == 1 and next(iter(contract["inputs"].values()))["dtype"] == "float32"
    explained = source.suffix in (".keras", ".h5") and one_float
    assert ("explain" in contract) == explained and ("explain" in card["signatures"]) == explained, case
    _check_serving(version, card, predict, logits=declared.get("logits", False))


def test_text_model_published_with_samples_and_eval(tmp_path: Path) -> None:
    """--samples become the held-out rows (warm-up, gate); --eval class folders give accuracy beside the
    majority-class baseline; the vocabulary table rules out a frozen graph and the card says so."""
    source, _predict = own_models.text_keras(tmp_path)
    lines = tmp_path / "messages.txt"
    lines.write_text("WIN a free prize\nlunch at noon?\n", encoding="utf-8")
    folders = tmp_path / "eval"
    for label, texts in {"ham": ["see you soon", "lunch?"], "spam": ["free cash now"]}.items():
        (folders / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (folders / label / f"{i}.txt").write_text(text, encoding="utf-8")
    request = Request(
        source=source,
        name="spam",
        models_dir=tmp_path / "models",
        declared=Declared(labels=["ham", "spam"]),
        samples=[lines],
        eval=folders,
    )
    card = json.loads((publish(request) / "model_card.json").read_text())
    assert set(card["metrics"]) == {"accuracy", "baseline_accuracy"}
    assert card["metrics"]["baseline_accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert card["frozen_graph"]["file"] is None and "lookup tables" in card["frozen_graph"]["note"]
    assert card["tflite"]["file"] is None  # the vocabulary table has no TF Lite builtin: the card says so
    assert card["tflite"]["reason"].startswith("TF Lite's converter cannot convert serving_default: ")
    assert card["data"]["eval"]["samples"] == 3


def test_regressor_eval_csv(tmp_path: Path) -> None:
    source, _predict = own_models.tabular_keras(tmp_path)
    csv = tmp_path / "eval.csv"
    csv.write_text("rooms,income,value\n4,30,1.0\n6,50,2.0\n5,41,1.5\n", encoding="utf-8")
    request = Request(source=source, name="houses", models_dir=tmp_path / "models", eval=csv)
    card = json.loads((publish(request) / "model_card.json").read_text())
    assert set(card["metrics"]) == {"rmse", "baseline_rmse"}
    assert card["metrics"]["baseline_rmse"] == pytest.approx(np.sqrt(1 / 6), abs=1e-5)
    assert card["frozen_graph"]["file"] == "frozen_graph.pb"
    assert card["contract"]["inputs"]["income"]["mean"][0] == pytest.approx(40.0, abs=2.0)


def test_eval_data_becomes_the_reference_profile(tmp_path: Path) -> None:
    """``--eval`` stores a drift profile of the eval rows and the model's outputs on them (issue 28), as the
    built-in models' training sample does, so the model server's drift monitor works for users' models."""
    source, _predict = own_models.tabular_keras(tmp_path)
    rows = [(4 + i % 5, 20 + (i * 7) % 40) for i in range(60)]
    csv = tmp_path / "eval.csv"
    csv.write_text(
        "rooms,income,value\n" + "".join(f"{r},{m},{m / 20:.2f}\n" for r, m in rows), encoding="utf-8"
    )
    version = publish(Request(source=source, name="houses", models_dir=tmp_path / "models", eval=csv))
    profile = json.loads((version / PROFILE_FILE).read_text())
    assert profile["rows"] == 60 and profile["reference_split"] == "eval (--eval)"
    assert {"rooms", "income"} <= set(profile["features"])
    assert profile["features"]["income"]["mean"] == pytest.approx(np.mean([m for _, m in rows]), rel=1e-4)
    outputs = set(profile["features"]) - {"rooms", "income"}
    assert outputs and all(
        profile["features"][n]["kind"] == "numeric" for n in outputs
    )  # the regression output


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


REFUSALS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "py_function": (own_models.py_function_model, "EagerPyFunc"),
    "unknown_op": (
        lambda d: own_models.unknown_op_model(d, own_models.tf1_classifier(d)[0]),
        "'FancySoftmaxCustomOp' (node 'scores') is not in TensorFlow's C++ runtime",
    ),
    "resource_input": (
        lambda d: own_models.resource_input_model(d, own_models.tf1_classifier(d)[0]),
        "input 'x' is resource-typed",
    ),
    "no_inputs": (own_models.no_input_model, "take no inputs"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusal_names_the_cause_and_changes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, cause = REFUSALS[case]
    source = build(tmp_path)
    models = tmp_path / "models"
    (models / "existing" / "1").mkdir(parents=True)
    before = _listing(models)
    code = main(["publish", str(source), "--name", "mine", "--models-dir", str(models)])
    err = capsys.readouterr().err.strip()
    assert code == 6
    assert len(err.splitlines()) == 1 and err.startswith("error: refused to publish") and cause in err
    assert _listing(models) == before


def test_labels_count_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, _ = own_models.tf1_classifier(tmp_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n", encoding="utf-8")
    args = [
        "publish",
        str(source),
        "--name",
        "iris",
        "--models-dir",
        str(tmp_path / "m"),
        "--labels",
        str(labels),
    ]
    assert main(args) == 2
    assert "2 labels for 3 classes" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_invalid_name_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", str(tmp_path / "nothing.keras"), "--name", "../escape"]) == 2
    assert "is not a model name" in capsys.readouterr().err
