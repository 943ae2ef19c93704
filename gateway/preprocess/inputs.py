"""What a request sent -> the tensors of a model's predict signature, by the model's typed contract
(``gateway.upstream.spec.Contract``): uploaded files fill its one image input, texts its one text input,
records its features. A request the contract cannot take raises the contract's own error (415, 400,
``inputs_not_mappable``).

Images are decoded on the event loop when they are tiny (``INLINE_PIXELS``; a worker-thread hop would cost
more), else in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from gateway.preprocess.image import decode_budget, images_to_batch, small_images
from gateway.preprocess.tabular import Record, records_to_tensors, validate_records
from gateway.preprocess.text import texts_to_bytes
from gateway.settings import Settings
from gateway.upstream.spec import Contract, NumericInput, TextInput
from gateway.upstream.tensors import float_tensor, string_tensor, uint8_tensor
from tfs_protos.tensorflow.core.framework import tensor_pb2

__all__ = ["INLINE_PIXELS", "feature_tensors", "tensors_for"]

# Uploads of at most 16 KiB with at most this many pixels in all (header sizes) are decoded on the event loop:
# a few 28x28 images take tens of microseconds, less than the hop to a worker thread; others go to a thread.
INLINE_PIXELS = 128 * 128
Tensors = dict[str, tensor_pb2.TensorProto]


def feature_tensors(records: Sequence[Record], features: Mapping[str, NumericInput | TextInput]) -> Tensors:
    """Validated records as one tensor per feature, each of its input's dtype and shape."""
    trailing = {k: f.trailing for k, f in features.items()}
    return records_to_tensors(records, list(features), trailing, {k: f.dtype for k, f in features.items()})


async def tensors_for(
    spec: Contract,
    settings: Settings,
    *,
    files: Sequence[tuple[str, bytes]] = (),
    texts: Sequence[str] | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
) -> Tensors:
    """The predict inputs for one request: ``files`` when any, else ``texts``, else ``records``."""
    if files:
        image = spec.for_images()
        if small_images(files, INLINE_PIXELS):  # a thread hop would cost more than the decode
            values, dims = images_to_batch(files, image.image, settings.max_image_pixels)
        else:
            budget = decode_budget(settings.max_decode_bytes)  # shared by every request of the process
            values, dims = await run_in_threadpool(
                images_to_batch, files, image.image, settings.max_image_pixels, budget
            )
        return {
            image.name: uint8_tensor(values, dims)
            if isinstance(values, bytes)
            else float_tensor(values, dims)
        }
    if texts is not None:
        text = spec.for_texts()
        encoded = texts_to_bytes(texts, max_items=settings.max_files, max_chars=settings.max_text_chars)
        return {text.name: string_tensor(encoded, text.row_dims(len(encoded)))}
    features = spec.for_records()
    return feature_tensors(validate_records(records or [], features, max_items=settings.max_files), features)
