"""gateway.contract: the contract derived from signatures when a model has no ``contract`` signature."""

from __future__ import annotations

from gateway.contract import ModelInfo, SignatureInfo, TensorSpec, derive_contract


def _sig(inputs: dict[str, TensorSpec], outputs: dict[str, TensorSpec] | None = None) -> SignatureInfo:
    return SignatureInfo(
        "tensorflow/serving/predict", inputs, outputs or {"y": TensorSpec("float32", [-1, 3])}
    )


def test_image_model_without_contract() -> None:
    contract = derive_contract(
        "img", {"serving_default": _sig({"x": TensorSpec("float32", [-1, 32, 32, 3])})}
    )
    info = ModelInfo("img", 1, {}, contract, False)
    name, spec = info.image_input()  # type: ignore[misc]
    assert name == "x" and (spec["height"], spec["width"], spec["channels"]) == (32, 32, 3)
    assert spec["range"] == [0.0, 1.0] and info.task == "image_classification"
    assert contract["predict"] == {"signature": "serving_default", "outputs": ["y"]}


def test_text_and_tabular_models_without_contract() -> None:
    text = derive_contract("t", {"serving_default": _sig({"s": TensorSpec("string", [-1])})})
    assert ModelInfo("t", 1, {}, text, False).text_input() is not None
    tabular = derive_contract(
        "h",
        {
            "serving_default": _sig({"a": TensorSpec("float32", [-1]), "b": TensorSpec("float32", [-1])}),
            "regress": _sig({"inputs": TensorSpec("string", [-1])}),
        },
    )
    info = ModelInfo("h", 1, {}, tabular, False)
    assert list(info.numeric_inputs()) == ["a", "b"] and info.task == "regression"
    assert tabular["regress"] == {"signature": "regress"}
