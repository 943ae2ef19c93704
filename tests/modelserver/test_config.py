"""modelserver's config files: model config, batching parameters and monitoring config in TF Serving's formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserver.errors import ConfigError
from modelserver.lifecycle.model_config import model_entries, parse_model_config, read_model_config_file
from modelserver.lifecycle.version_policy import LatestVersions, SpecificVersions
from modelserver.process.monitoring_config import DEFAULT_PROMETHEUS_PATH, parse_monitoring_config
from modelserver.runtime.batching_config import BatchingConfig, parse_batching_config

REPO_ROOT = Path(__file__).resolve().parents[2]

# TF Serving's serving_config.md example and testdata/good_model_config.txt style (colons and commas).
DOC_EXAMPLE = """
model_config_list {
  config {
    name: 'half_plus_two'  base_path: '/models/half_plus_two'  model_platform: 'tensorflow'
    model_version_policy { specific { versions: 123 versions: 124 } }
    version_labels { key: 'stable' value: 123 }
    version_labels { key: 'canary' value: 124 }
  }
}
"""
COLON_STYLE = """model_config_list: {
  config: { name: "a", base_path: "rel/a", model_platform: "tensorflow" },
  config: { name: "b", base_path: "/abs/b" }
}"""


def test_doc_example() -> None:
    entries = model_entries(parse_model_config(DOC_EXAMPLE))
    entry = entries["half_plus_two"]
    assert entry.base_path == Path("/models/half_plus_two")
    assert entry.policy == SpecificVersions(frozenset({123, 124}))
    assert entry.labels == {"stable": 123, "canary": 124}


def test_colon_style_and_relative_base_paths(tmp_path: Path) -> None:
    entries = model_entries(parse_model_config(COLON_STYLE), base_dir=tmp_path)
    assert entries["a"].base_path == tmp_path / "rel/a"
    assert entries["b"].base_path == Path("/abs/b")
    assert entries["b"].policy == LatestVersions(1)


def test_repository_models_config_parses() -> None:
    entries = model_entries(read_model_config_file(REPO_ROOT / "models" / "models.config"))
    assert set(entries) == {"fashion", "text", "housing"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (  # worded as tensorflow_model_server's protobuf parser words it (line:column)
            "improperly formatted file",
            "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: Message type",
        ),
        ("model_config_list { config { base_path: '/x' } }", "has no name"),
        ("model_config_list { config { name: 'a' } }", "has no base_path"),
        (
            "model_config_list { config { name: 'a' base_path: '/a' } config { name: 'a' base_path: '/b' } }",
            "twice",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'pytorch' } }",
            "not supported",
        ),
    ],
)
def test_bad_model_configs_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        model_entries(parse_model_config(text, "models.config"))


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read model config file"):
        read_model_config_file(tmp_path / "absent.config")


def test_batching_parameters_doc_example_and_defaults() -> None:
    config = parse_batching_config(
        "max_batch_size { value: 128 } batch_timeout_micros { value: 0 } "
        "max_enqueued_batches { value: 1000000 } num_batch_threads { value: 8 }"
    )
    assert config == BatchingConfig(128, 0, 1000000, 8)
    assert parse_batching_config("") == BatchingConfig()
    sized = parse_batching_config("max_batch_size { value: 8 } allowed_batch_sizes: 2 allowed_batch_sizes: 8")
    assert sized.allowed_batch_sizes == (2, 8)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("max_batch_size: 8", "not a valid text proto"),  # wrapper fields need { value: N }
        ("max_batch_size { value: 0 }", "max_batch_size must be positive"),
        ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "must equal max_batch_size"),
        ("max_batch_size { value: 8 } allowed_batch_sizes: 8 allowed_batch_sizes: 4", "increasing"),
        ("unknown_field { value: 1 }", "text-format tensorflow.serving.BatchingParameters: 1:1: "),
    ],
)
def test_bad_batching_parameters(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_batching_config(text, "batching.config")


def test_monitoring_config() -> None:
    config = parse_monitoring_config('prometheus_config { enable: true, path: "/metrics" }')
    assert config.prometheus_enabled and config.prometheus_path == "/metrics"
    config = parse_monitoring_config("prometheus_config { enable: true }")
    assert config.prometheus_path == DEFAULT_PROMETHEUS_PATH == "/monitoring/prometheus/metrics"
    assert not parse_monitoring_config("").prometheus_enabled
    with pytest.raises(ConfigError, match="must start with '/'"):
        parse_monitoring_config('prometheus_config { enable: true, path: "metrics" }')
