"""Multipart uploads read with limits enforced while they stream: Starlette's parser spools files without a
size bound and grows part headers by concatenation (quadratic in their size), so here every file part stops
at ``max_file_bytes`` (413), all file parts together at ``max_total_bytes`` (413: 32 files each under the
per-file limit would otherwise all be read into memory), and every part header at ``MAX_PART_HEADER_BYTES``
(400) as soon as it passes."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from gateway.errors import BadRequest, PayloadTooLarge

__all__ = ["MAX_PART_HEADER_BYTES", "read_form"]

MAX_PART_HEADER_BYTES = 16 * 1024


class _PartHeaderTooLarge(BadRequest):
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # the rest of the body is never read


class _BoundedParser(MultiPartParser):
    def __init__(self, *args: Any, max_file_bytes: int, max_total_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self._part_bytes = 0
        self._total_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._part_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._part_bytes += end - start
        if self._current_part.file is not None:
            self._total_bytes += end - start
            if self._part_bytes > self.max_file_bytes:
                name = self._current_part.file.filename or "file"
                raise PayloadTooLarge(
                    f"file {name!r} is over {self.max_file_bytes} bytes; send a smaller file"
                )
            if self._total_bytes > self.max_total_bytes:
                raise PayloadTooLarge(
                    f"the files are over {self.max_total_bytes} bytes in all; send fewer or smaller files"
                )
        super().on_part_data(data, start, end)

    def _check_header(self, size: int) -> None:
        if size > MAX_PART_HEADER_BYTES:
            raise _PartHeaderTooLarge(
                f"a multipart part header is over {MAX_PART_HEADER_BYTES} bytes; send a short one"
            )

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._check_header(len(self._current_partial_header_name) + end - start)
        super().on_header_field(data, start, end)

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._check_header(len(self._current_partial_header_value) + end - start)
        super().on_header_value(data, start, end)


async def read_form(
    request: Request, *, max_files: int, max_fields: int, max_file_bytes: int, max_total_bytes: int
) -> FormData:
    """The multipart form of ``request``; the caller closes it (``await form.close()``)."""
    async with aclosing(request.stream()) as stream:
        parser = _BoundedParser(
            request.headers,
            stream,
            max_files=max_files,
            max_fields=max_fields,
            max_file_bytes=max_file_bytes,
            max_total_bytes=max_total_bytes,
        )
        try:
            return await parser.parse()
        except MultiPartException as exc:
            raise BadRequest(f"{exc.message} Send images as multipart form field 'file'.") from None
