"""Request bodies built once per run from the real datasets (first test image of Fashion-MNIST, first SMS,
first housing row), written to files the load generators send unchanged.

The gRPC bodies are unary gRPC messages: a 5-byte prefix (compressed flag 0, big-endian length) then the
serialized ``PredictRequest``; every scenario that compares two paths sends the same image through both.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.data import HOUSING_FEATURES

__all__ = [
    "HOUSING_FEATURES",
    "PREDICT_METHOD",
    "Payloads",
    "build_payloads",
    "fashion_images",
    "grpc_frame",
    "predict_request",
]

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
_BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def fashion_images(data_dir: Path, count: int) -> np.ndarray:
    """The first ``count`` test images, uint8 [count, 28, 28] (IDX: 16-byte header, then pixels)."""
    with gzip.open(data_dir / "fashion-mnist" / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read(16 + count * 784)
    magic, total, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x803 or (rows, cols) != (28, 28) or total < count:
        raise ValueError(f"not a Fashion-MNIST image file: magic {magic:#x}, {total}x{rows}x{cols}")
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, 28, 28)


def first_sms(data_dir: Path) -> str:
    line = (data_dir / "sms-spam" / "SMSSpamCollection").read_text(encoding="utf-8").splitlines()[0]
    return line.split("\t", 1)[1]


def first_house(data_dir: Path) -> dict[str, float]:
    with open(data_dir / "housing" / "housing.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    return {name: float(row[name]) if row[name] else float("nan") for name in HOUSING_FEATURES}


def predict_request(model: str, inputs: dict[str, np.ndarray], signature: str = "serving_default") -> bytes:
    """A serialized ``tensorflow.serving.PredictRequest`` with the tensors ``tf.make_tensor_proto`` makes
    (numbers packed in ``tensor_content``, a single number in its typed field, strings in ``string_val``),
    built without importing TensorFlow: the bench process must not map TensorFlow's libraries, or the model
    server's PSS would be shared with it."""
    from modelserver.runtime.tensors import dtype_enum, to_tensor_proto
    from tfs_protos.tensorflow.core.framework import tensor_pb2
    from tfs_protos.tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        if value.size == 1 or value.dtype.kind in "SO":  # typed fields: what to_tensor_proto writes
            request.inputs[name].CopyFrom(to_tensor_proto(value))
            continue
        tensor = tensor_pb2.TensorProto(
            dtype=dtype_enum(value), tensor_content=value.astype(value.dtype.newbyteorder("<")).tobytes()
        )
        for size in value.shape:
            tensor.tensor_shape.dim.add(size=size)
        request.inputs[name].CopyFrom(tensor)
    return bytes(request.SerializeToString())


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(field: str, filename: str, content_type: str, data: bytes) -> tuple[bytes, str]:
    head = (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{_BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={_BOUNDARY}"


@dataclass(frozen=True)
class Payloads:
    image: np.ndarray  # uint8 [28, 28], the image every fashion scenario sends
    tensor: np.ndarray  # float32 [1, 28, 28, 1] in [0, 1]: what the gateway makes of the PNG
    sms: str
    house: dict[str, float]
    grpc_fashion: Path
    grpc_text: Path
    grpc_housing: Path
    rest_fashion: Path  # {"instances": [...]} - TF Serving REST row format, also the baselines'
    upload_fashion: Path  # multipart body with the PNG in field ``file``
    upload_content_type: str
    png: Path


def build_payloads(data_dir: Path, out_dir: Path) -> Payloads:
    out_dir.mkdir(parents=True, exist_ok=True)
    image = fashion_images(data_dir, 1)[0]
    tensor = (image.astype(np.float32) / 255.0).reshape(1, 28, 28, 1)
    sms, house = first_sms(data_dir), first_house(data_dir)

    def write(name: str, data: bytes) -> Path:
        path = out_dir / name
        path.write_bytes(data)
        return path

    png = png_bytes(image)
    upload, upload_type = multipart("file", "item.png", "image/png", png)
    return Payloads(
        image=image,
        tensor=tensor,
        sms=sms,
        house=house,
        grpc_fashion=write("fashion.grpc", grpc_frame(predict_request("fashion", {"image": tensor}))),
        grpc_text=write("text.grpc", grpc_frame(predict_request("text", {"text": np.array([sms.encode()])}))),
        grpc_housing=write(
            "housing.grpc",
            grpc_frame(
                predict_request("housing", {k: np.array([v], dtype=np.float32) for k, v in house.items()})
            ),
        ),
        rest_fashion=write("fashion.json", json.dumps({"instances": tensor.tolist()}).encode()),
        upload_fashion=write("fashion-upload.multipart", upload),
        upload_content_type=upload_type,
        png=write("item.png", png),
    )
