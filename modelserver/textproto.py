"""Text-proto files as TensorFlow Serving reads them: parse a message, read a file, and declare the few
TF Serving config messages that no installed package ships as a Python module (their descriptors are built
here with TF Serving's own field names and numbers, so the same files parse here and in
``tensorflow_model_server``). Any malformed or unreadable file raises ``ConfigError`` naming it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

from modelserver.errors import ConfigError

__all__ = ["Field", "declare_message", "parse_text", "read_text_file"]

Field = descriptor_pb2.FieldDescriptorProto


def declare_message(
    name: str, build: Callable[[descriptor_pb2.FileDescriptorProto, Callable[..., None]], None]
) -> type[Any]:
    """The message class ``tensorflow.serving.<name>``, from a descriptor ``build`` adds to a fresh file."""
    f = descriptor_pb2.FileDescriptorProto(
        name=f"modelserver/tf_serving_{name}.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )

    def add(
        message: descriptor_pb2.DescriptorProto,
        field_name: str,
        number: int,
        kind: int,
        type_name: str = "",
        repeated: bool = False,
    ) -> None:
        added = message.field.add(
            name=field_name,
            number=number,
            type=kind,
            label=Field.LABEL_REPEATED if repeated else Field.LABEL_OPTIONAL,
        )
        if type_name:
            added.type_name = type_name

    build(f, add)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(f)
    message: type[Any] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
    )
    return message


def parse_text(text: str, message: Any, what: str, source: str) -> Any:
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        # Worded as the C++ protobuf parser that tensorflow_model_server uses words it:
        # "Error parsing text-format <message type>: <line>:<column>: <what is wrong>".
        detail = re.sub(r"^\d+:\d+ : ", "", str(exc))
        where = f"{exc.GetLine()}:{exc.GetColumn()}: " if exc.GetLine() is not None else ""
        raise ConfigError(
            f"{what} {source} is not a valid text proto: Error parsing text-format "
            f"{message.DESCRIPTOR.full_name}: {where}{detail}"
        ) from None


def read_text_file(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
