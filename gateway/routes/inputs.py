"""What a client sent to an inference route (``:classify``, ``:predict``, ``:regress``, ``:explain``), read
and bounded: multipart ``file`` parts (images) or a JSON ``{"texts": [...]}`` / ``{"records": [...]}`` body
(``gateway.schemas.parse_inputs``), and the model's input tensors for them (``gateway.preprocess``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from gateway.deps import Services
from gateway.errors import BadRequest, PayloadTooLarge, TooManyItems, UnsupportedMediaType
from gateway.preprocess.inputs import tensors_for
from gateway.routes.forms import read_form
from gateway.schemas import TextsBody, parse_inputs
from gateway.upstream.contract import ModelInfo
from tfs_protos.tensorflow.core.framework import tensor_pb2

__all__ = ["Inputs", "input_tensors", "read_inputs"]


class Inputs:
    """What the client sent, decoded: exactly one of files / texts / records."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []
        self.texts: list[str] | None = None
        self.records: list[dict[str, Any]] | None = None

    @property
    def names(self) -> list[str]:
        if self.files:
            return [name for name, _ in self.files]
        count = len(self.texts or self.records or [])
        kind = "texts" if self.texts is not None else "records"
        return [f"{kind}[{i}]" for i in range(count)]


async def read_inputs(request: Request, services: Services) -> Inputs:
    settings = services.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    inputs = Inputs()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not accepted; send it uncompressed")
    if content_type == "multipart/form-data":
        form = await read_form(
            request,
            max_files=settings.max_files,
            max_fields=10,
            max_file_bytes=settings.max_upload_bytes,
            max_total_bytes=settings.max_request_bytes,
        )
        try:
            uploads = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
            if not uploads:
                raise BadRequest(
                    'no file sent; upload images as multipart form field "file" (curl -F file=@x.png)'
                )
            if len(uploads) > settings.max_files:
                raise TooManyItems("files", len(uploads), settings.max_files)
            for index, upload in enumerate(uploads):
                data = await upload.read(settings.max_upload_bytes + 1)
                name = upload.filename or f"file[{index}]"
                if len(data) > settings.max_upload_bytes:
                    raise PayloadTooLarge(
                        f"file {name!r} is over {settings.max_upload_bytes} bytes; send a smaller file"
                    )
                inputs.files.append((name, data))
        finally:
            await form.close()
        return inputs
    if content_type in ("application/json", ""):
        raw = await request.body()
        if len(raw) > settings.max_upload_bytes:
            raise PayloadTooLarge(f"JSON body is over {settings.max_upload_bytes} bytes")
        body = parse_inputs(raw, settings.max_files)
        if isinstance(body, TextsBody):
            inputs.texts = body.texts
        else:
            inputs.records = list(body.records)
        return inputs
    raise UnsupportedMediaType(
        f"content type {content_type!r} is not accepted; use multipart/form-data (images) or application/json"
    )


async def input_tensors(
    services: Services, name: str, info: ModelInfo, inputs: Inputs
) -> dict[str, tensor_pb2.TensorProto]:
    """The model's input tensors for what the client sent, as its contract describes them (also ``:explain``;
    ``name`` is ``info.name``, kept for its callers)."""
    return await tensors_for(
        info.spec, services.settings, files=inputs.files, texts=inputs.texts, records=inputs.records
    )
