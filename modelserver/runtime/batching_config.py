"""Batching parameters (``--batching_parameters_file``, TF Serving's ``BatchingParameters`` text proto from
``session_bundle_config.proto``) with the defaults of TensorFlow's shared batch scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelserver.errors import ConfigError
from modelserver.textproto import Field, declare_message, parse_text

__all__ = ["BatchingConfig", "BatchingParametersProto", "parse_batching_config"]


def _declare(f: Any, add: Any) -> None:
    batching = f.message_type.add(name="BatchingParameters")
    for name, number in (
        ("max_batch_size", 1),
        ("batch_timeout_micros", 2),
        ("max_enqueued_batches", 3),
        ("num_batch_threads", 4),
        ("max_execution_batch_size", 9),
    ):
        add(batching, name, number, Field.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    add(batching, "thread_pool_name", 5, Field.TYPE_MESSAGE, ".google.protobuf.StringValue")
    add(batching, "allowed_batch_sizes", 6, Field.TYPE_INT64, repeated=True)
    add(batching, "pad_variable_length_inputs", 7, Field.TYPE_BOOL)
    add(batching, "enable_large_batch_splitting", 8, Field.TYPE_MESSAGE, ".google.protobuf.BoolValue")


BatchingParametersProto = declare_message("BatchingParameters", _declare)


@dataclass(frozen=True)
class BatchingConfig:
    """Batching parameters with defaults where the file leaves a field unset (TF's shared batch scheduler:
    max_batch_size 1000, timeout 0, max_enqueued_batches 10, threads = CPUs)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0  # 0 = number of CPUs
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0

    def __post_init__(self) -> None:
        if self.max_batch_size <= 0:
            raise ConfigError("batching parameters: max_batch_size must be positive")
        if self.batch_timeout_micros < 0:
            raise ConfigError("batching parameters: batch_timeout_micros must be >= 0")
        if self.max_enqueued_batches <= 0:
            raise ConfigError("batching parameters: max_enqueued_batches must be positive")
        if self.num_batch_threads < 0:
            raise ConfigError("batching parameters: num_batch_threads must be >= 0")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(s <= 0 for s in sizes) or list(sizes) != sorted(set(sizes)):
                raise ConfigError("batching parameters: allowed_batch_sizes must be positive and increasing")
            if sizes[-1] != self.max_batch_size:
                raise ConfigError(
                    f"batching parameters: the last entry in allowed_batch_sizes ({sizes[-1]}) must equal "
                    f"max_batch_size ({self.max_batch_size})"
                )


def parse_batching_config(text: str, source: str = "<text>") -> BatchingConfig:
    proto = parse_text(text, BatchingParametersProto(), "batching parameters file", source)
    values: dict[str, Any] = {}
    for name in (
        "max_batch_size",
        "batch_timeout_micros",
        "max_enqueued_batches",
        "num_batch_threads",
        "max_execution_batch_size",
    ):
        if proto.HasField(name):
            values[name] = int(getattr(proto, name).value)
    if proto.HasField("enable_large_batch_splitting"):
        values["enable_large_batch_splitting"] = bool(proto.enable_large_batch_splitting.value)
    values["allowed_batch_sizes"] = tuple(int(s) for s in proto.allowed_batch_sizes)
    values["pad_variable_length_inputs"] = bool(proto.pad_variable_length_inputs)
    try:
        return BatchingConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
