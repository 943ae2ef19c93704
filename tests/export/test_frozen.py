"""frozen_graph.pb: a single GraphDef without variables that gives the SavedModel's outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from export.frozen import FROZEN_GRAPH, load_frozen
from export.housing import FEATURES


def _inputs(name: str) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    if name == "fashion":
        return {"image": rng.random((5, 28, 28, 1), dtype=np.float32)}
    if name == "text":
        return {
            "text": np.asarray(
                [
                    b"WINNER!! claim your prize call 09061701461",
                    b"ok see you at 5 :)",
                    b"",
                    "unknownwordzzz caf\u00e9 \u2603".encode(),
                    b"Free entry free entry FREE",
                ],
                dtype=object,
            )
        }
    values = {f: rng.random(5, dtype=np.float32) * 100 for f in FEATURES}
    values["median_income"] = rng.random(5, dtype=np.float32) * 10
    values["total_bedrooms"][2] = np.nan
    return values


@pytest.mark.parametrize("name", ["fashion", "text", "housing"])
def test_frozen_graph_has_no_variables_and_matches_the_savedmodel(
    versions: dict[str, Path], loaded: dict[str, Any], cards: dict[str, dict[str, Any]], name: str
) -> None:
    path = versions[name] / FROZEN_GRAPH
    graph_def = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    ops = {node.op for node in graph_def.node}
    ops |= {node.op for function in graph_def.library.function for node in function.node_def}
    assert not ops & {"VarHandleOp", "ReadVariableOp", "VariableV2", "HashTableV2", "LookupTableFindV2"}

    names = cards[name]["frozen_graph"]
    assert cards[name]["frozen_graph"]["max_abs_difference"] <= 1e-4
    frozen = load_frozen(path, names["inputs"], names["outputs"])
    inputs = _inputs(name)
    expected = loaded[name].signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    actual = frozen(**inputs)
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_allclose(np.asarray(actual[key]), expected[key].numpy(), rtol=1e-4, atol=1e-4)
