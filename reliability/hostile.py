"""Hostile uploads: broken and malicious files and bodies sent to the gateway and to the modelserver's REST
API. Each must get the expected 4xx with a message saying what to fix, no reply may leak internals, both
services must stay up, and their memory must stay bounded (``RSS_BOUND_BYTES`` over the start)."""

from __future__ import annotations

import io
import json
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image

from reliability.outcome import Outcome
from reliability.payloads import HOUSING_RECORD, Request, image_bytes
from reliability.probes import usage
from reliability.replies import error_message, leaks
from reliability.stack import Stack

__all__ = ["CASES", "RSS_BOUND_BYTES", "Case", "run", "try_case", "try_declared_too_large"]

RSS_BOUND_BYTES = 256 * 1024 * 1024
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Case:
    """``build(max_upload_bytes)`` gives the request; ``expect`` the acceptable statuses."""

    name: str
    target: str  # "gateway" | "modelserver"
    build: Callable[[int], Request]
    expect: frozenset[int]
    why: str = ""


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` with almost no pixel data (a 'huge dimensions' file)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _gif_header(width: int, height: int) -> bytes:
    """A GIF whose logical screen and first frame claim ``width x height``."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b"
    return screen + frame


def _bomb_png() -> bytes:
    """8000 x 8000 black pixels (64 Mpx, about 60 KiB compressed): a classic decompression bomb."""
    out = io.BytesIO()
    Image.new("L", (8000, 8000)).save(out, format="PNG", optimize=False)
    return out.getvalue()


def _animated_gif(frames: int = 60) -> bytes:
    images = [Image.new("L", (28, 28), (i * 7) % 256) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], loop=0)
    return out.getvalue()


def _jpeg() -> bytes:
    return image_bytes((64, 64), "JPEG", mode="RGB")


def _file(
    name: str, data: bytes, kind: str = "image/png", path: str = "/v1/models/fashion:classify"
) -> Request:
    return Request(name, path, files=[("file", (name, data, kind))])


def _raw(path: str, body: bytes, content_type: str = "application/json") -> Request:
    return Request(path, path, content=body, headers={"content-type": content_type})


def _nested(depth: int, key: str = "texts") -> bytes:
    return (f'{{"{key}": ' + "[" * depth + "]" * depth + "}").encode()


TEXT = "/v1/models/text:classify"
HOUSING = "/v1/models/housing:regress"
BAD = frozenset({400})
TOO_BIG = frozenset({413})
MEDIA = frozenset({415})


FASHION_REST = "/v1/models/fashion:predict"
HOUSING_REST = "/v1/models/housing:regress"


def _brackets(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _deep(depth: int) -> bytes:
    return b'{"instances": ' + _brackets(depth) + b"}"


def _record(**changes: object) -> dict[str, object]:
    return {**HOUSING_RECORD, **changes}


CASES: tuple[Case, ...] = (
    # --- images ---------------------------------------------------------------------------------------------
    Case("truncated PNG", "gateway", lambda _: _file("half.png", image_bytes()[:40]), MEDIA),
    Case(
        "truncated JPEG",
        "gateway",
        lambda _: _file("half.jpg", _jpeg()[: len(_jpeg()) // 2], "image/jpeg"),
        MEDIA,
    ),
    Case(
        "corrupt JPEG body",
        "gateway",
        lambda _: _file("bad.jpg", _jpeg()[:160] + bytes(range(256)) * 8, "image/jpeg"),
        MEDIA,
    ),
    Case("random bytes named .png", "gateway", lambda _: _file("noise.png", bytes(range(256)) * 16), MEDIA),
    Case(
        "PDF sent as image",
        "gateway",
        lambda _: _file("doc.pdf", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\n", "application/pdf"),
        MEDIA,
    ),
    Case("0-byte file", "gateway", lambda _: _file("empty.png", b""), BAD),
    Case(
        "decompression bomb (64 Mpx PNG, 60 KiB)",
        "gateway",
        lambda _: _file("bomb.png", _bomb_png()),
        TOO_BIG,
    ),
    Case(
        "huge dimensions (PNG header 100000x100000)",
        "gateway",
        lambda _: _file("huge.png", _png_header(100_000, 100_000)),
        TOO_BIG,
    ),
    Case(
        "huge dimensions (GIF header 65535x65535)",
        "gateway",
        lambda _: _file("huge.gif", _gif_header(65535, 65535), "image/gif"),
        TOO_BIG,
    ),
    Case(
        "animated GIF (60 frames)",
        "gateway",
        lambda _: _file("anim.gif", _animated_gif(), "image/gif"),
        frozenset({200}),
        "served from its first frame, as gateway.preprocess.image documents; later frames are never decoded",
    ),
    Case(
        "file over the upload limit",
        "gateway",
        lambda limit: _file("big.png", image_bytes() + b"\0" * limit),
        TOO_BIG,
    ),
    Case(
        "33 files (limit 32)",
        "gateway",
        lambda _: Request(
            "33",
            "/v1/models/fashion:classify",
            files=[("file", (f"{i}.png", image_bytes(), "image/png")) for i in range(33)],
        ),
        BAD,
    ),
    Case(
        "multipart without a 'file' field",
        "gateway",
        lambda _: Request(
            "nofile", "/v1/models/fashion:classify", files=[("image", ("a.png", image_bytes(), "image/png"))]
        ),
        BAD,
    ),
    Case(
        "malformed multipart",
        "gateway",
        lambda _: _raw(
            "/v1/models/fashion:classify", b"--xyz\r\ngarbage", "multipart/form-data; boundary=xyz"
        ),
        BAD,
    ),
    Case(
        "multipart without boundary",
        "gateway",
        lambda _: _raw("/v1/models/fashion:classify", b"abc", "multipart/form-data"),
        BAD,
    ),
    Case(
        "image sent to the text model", "gateway", lambda _: _file("a.png", image_bytes(), path=TEXT), MEDIA
    ),
    # --- content types and JSON ---------------------------------------------------------------------------
    Case("text/plain body", "gateway", lambda _: _raw(TEXT, b"free money", "text/plain"), MEDIA),
    Case("XML body", "gateway", lambda _: _raw(TEXT, b"<texts><t>hi</t></texts>", "application/xml"), MEDIA),
    Case(
        "texts sent to the image model",
        "gateway",
        lambda _: Request("t", "/v1/models/fashion:classify", json={"texts": ["hi"]}),
        BAD,
    ),
    Case("deeply nested JSON (100 000 levels)", "gateway", lambda _: _raw(TEXT, _nested(100_000)), BAD),
    Case("nested JSON (500 levels)", "gateway", lambda _: _raw(TEXT, _nested(500)), BAD),
    Case(
        "deeply nested JSON to the admin API",
        "gateway",
        lambda _: _raw("/v1/admin/models/text:promote", _nested(100_000, "version")),
        frozenset(
            {413}
        ),  # 200 KB: over the admin body cap (64 KiB), refused before it is parsed or authorised
    ),
    Case(
        "huge JSON (over the upload limit)",
        "gateway",
        lambda limit: Request("huge", TEXT, json={"texts": ["a" * 1000] * (limit // 1000 + 10)}),
        TOO_BIG,
    ),
    Case("JSON that is a list", "gateway", lambda _: _raw(TEXT, b"[1, 2, 3]"), BAD),
    Case("invalid JSON", "gateway", lambda _: _raw(TEXT, b'{"texts": ["a",'), BAD),
    Case("invalid UTF-8 in JSON", "gateway", lambda _: _raw(TEXT, b'{"texts": ["\xff\xfe\xfa"]}'), BAD),
    Case(
        "invalid UTF-8 in a form field",
        "gateway",
        lambda _: _raw(
            "/v1/models/fashion:classify",
            b'--b\r\nContent-Disposition: form-data; name="\xff\xfe"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        BAD,
    ),
    Case("texts of the wrong dtype", "gateway", lambda _: Request("ints", TEXT, json={"texts": [1, 2]}), BAD),
    Case("texts not a list", "gateway", lambda _: Request("str", TEXT, json={"texts": "hello"}), BAD),
    Case("no texts", "gateway", lambda _: Request("empty", TEXT, json={"texts": []}), BAD),
    Case("too many texts", "gateway", lambda _: Request("many", TEXT, json={"texts": ["a"] * 1000}), BAD),
    Case("text too long", "gateway", lambda _: Request("long", TEXT, json={"texts": ["a" * 1_000_000]}), BAD),
    Case(
        "both texts and records",
        "gateway",
        lambda _: Request("both", TEXT, json={"texts": ["a"], "records": [{}]}),
        BAD,
    ),
    Case(
        "NaN feature",
        "gateway",
        lambda _: _raw(HOUSING, json.dumps({"records": [_record(median_income=float("nan"))]}).encode()),
        BAD,
    ),
    Case(
        "Infinity feature",
        "gateway",
        lambda _: _raw(HOUSING, json.dumps({"records": [_record(latitude=float("inf"))]}).encode()),
        BAD,
    ),
    Case(
        "1e400 feature", "gateway", lambda _: _raw(HOUSING, b'{"records": [{"median_income": 1e400}]}'), BAD
    ),
    Case(
        "string feature",
        "gateway",
        lambda _: Request("s", HOUSING, json={"records": [_record(median_income="high")]}),
        BAD,
    ),
    Case(
        "nested feature",
        "gateway",
        lambda _: Request("n", HOUSING, json={"records": [_record(median_income=[[1.0]])]}),
        BAD,
    ),
    Case(
        "unknown feature",
        "gateway",
        lambda _: Request("u", HOUSING, json={"records": [_record(rooms_total=3.0)]}),
        BAD,
    ),
    Case(
        "records not objects", "gateway", lambda _: Request("r", HOUSING, json={"records": [[1, 2, 3]]}), BAD
    ),
    Case(
        "too many records",
        "gateway",
        lambda _: Request("m", HOUSING, json={"records": [HOUSING_RECORD] * 1000}),
        BAD,
    ),
    Case("texts to the regressor", "gateway", lambda _: Request("t", HOUSING, json={"texts": ["a"]}), BAD),
    Case(
        "records to the text model",
        "gateway",
        lambda _: Request("r", TEXT, json={"records": [HOUSING_RECORD]}),
        BAD,
    ),
    Case("k=0", "gateway", lambda _: Request("k", TEXT + "?k=0", json={"texts": ["a"]}), frozenset({422})),
    Case(
        "version not a number",
        "gateway",
        lambda _: Request("v", TEXT + "?version=abc", json={"texts": ["a"]}),
        frozenset({422}),
    ),
    Case(
        "version above int64",
        "gateway",
        lambda _: Request("v", TEXT + "?version=32589158477190044729", json={"texts": ["a"]}),
        frozenset({422}),
    ),
    Case(
        "promote a version above int64",
        "gateway",
        lambda _: _raw("/v1/admin/models/text:promote", b'{"version": 32589158477190044729}'),
        frozenset({401, 422}),
    ),
    Case(
        "version and label together",
        "gateway",
        lambda _: Request("vl", TEXT + "?version=1&label=stable", json={"texts": ["a"]}),
        BAD,
    ),
    # --- the modelserver's REST API (TF Serving's messages) ----------------------------------------------
    Case(
        "REST: deeply nested JSON",
        "modelserver",
        lambda _: _raw("/v1/models/text:predict", _nested(100_000, "instances")),
        BAD,
    ),
    Case(
        "REST: invalid UTF-8",
        "modelserver",
        lambda _: _raw("/v1/models/text:predict", b'{"instances": ["\xff\xfe"]}'),
        BAD,
    ),
    Case("REST: not JSON", "modelserver", lambda _: _raw("/v1/models/text:predict", b"hello"), BAD),
    Case("REST: empty body", "modelserver", lambda _: _raw("/v1/models/text:predict", b""), BAD),
    Case(
        "REST: NaN for a string input",
        "modelserver",
        lambda _: _raw("/v1/models/text:predict", b'{"instances": [NaN]}'),
        BAD,
    ),
    Case(
        "REST: wrong dtype",
        "modelserver",
        lambda _: _raw("/v1/models/fashion:predict", b'{"inputs": {"image": "abc"}}'),
        BAD,
    ),
    Case(
        "REST: wrong shape",
        "modelserver",
        lambda _: _raw("/v1/models/fashion:predict", b'{"inputs": {"image": [[1, 2, 3]]}}'),
        BAD,
    ),
    Case(
        "REST: ragged list",
        "modelserver",
        lambda _: _raw("/v1/models/fashion:predict", b'{"inputs": {"image": [[[[0.1]]], [[[0.1], [0.2]]]]}}'),
        BAD,
    ),
    Case(
        "REST: bad base64",
        "modelserver",
        lambda _: _raw("/v1/models/text:predict", b'{"instances": [{"b64": "!!!"}]}'),
        BAD,
    ),
    Case(
        "REST: version overflow",
        "modelserver",
        lambda _: _raw("/v1/models/text/versions/99999999999999999999999:predict", b"{}"),
        BAD,
    ),
    Case(
        "REST: nested example feature",
        "modelserver",
        lambda _: _raw("/v1/models/housing:regress", b'{"examples": [{"median_income": [[1]]}]}'),
        BAD,
    ),
    # --- issue 17: inputs that used to answer 500 with a traceback, or were taken laxly ----------------
    Case("REST: instances nested 65 deep", "modelserver", lambda _: _raw(FASHION_REST, _deep(65)), BAD),
    Case("REST: instances nested 1000 deep", "modelserver", lambda _: _raw(FASHION_REST, _deep(1000)), BAD),
    Case(
        "REST: 1000-deep signature_name",
        "modelserver",
        lambda _: _raw(FASHION_REST, b'{"instances": [1], "signature_name": ' + _brackets(1000) + b"}"),
        BAD,
    ),
    Case(
        "REST: version of 5000 digits",
        "modelserver",
        lambda _: _raw("/v1/models/text/versions/" + "7" * 5000 + ":predict", b'{"instances": ["a"]}'),
        BAD,
    ),
    Case("REST: 1e400", "modelserver", lambda _: _raw(FASHION_REST, b'{"instances": [[1e400]]}'), BAD),
    Case(
        "REST: regress integer above uint64",
        "modelserver",
        lambda _: _raw(HOUSING_REST, b'{"examples": [{"median_income": 1180591620717411303424}]}'),
        BAD,
        "a float feature, as in TF Serving (rapidjson holds it as a double); the lone feature fails the parse",
    ),
    Case(
        "REST: regress integer in uint64 only",
        "modelserver",
        lambda _: _raw(HOUSING_REST, b'{"examples": [{"median_income": 18446744073709551603}]}'),
        BAD,
    ),
    Case(
        "REST: 5000-digit integer",
        "modelserver",
        lambda _: _raw(HOUSING_REST, b'{"examples": [{"median_income": ' + b"9" * 5000 + b"}]}"),
        BAD,
    ),
    Case(
        "5000-digit integer in a record",
        "gateway",
        lambda _: _raw(HOUSING, b'{"records": [{"median_income": ' + b"9" * 5000 + b"}]}"),
        BAD,
    ),
    Case(
        "400-digit integer in a record (beyond float)",
        "gateway",
        lambda _: _raw(HOUSING, b'{"records": [{"median_income": ' + b"9" * 400 + b"}]}"),
        BAD,
    ),
    Case(
        'number as a string ("37.88")',
        "gateway",
        lambda _: Request("str", HOUSING, json={"records": [_record(latitude="37.88")]}),
        BAD,
    ),
    Case(
        "boolean as a number (true)",
        "gateway",
        lambda _: Request("bool", HOUSING, json={"records": [_record(latitude=True)]}),
        BAD,
    ),
    Case(
        "1000-deep value in a record",
        "gateway",
        lambda _: _raw(HOUSING, b'{"records": [{"median_income": ' + _brackets(1000) + b"}]}"),
        BAD,
    ),
)


def _declared_too_large(base_url: str, path: str) -> tuple[int, str]:
    """A request that only *declares* a body far over the limit (no body sent): must be refused at once."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2**40}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body.decode("utf-8", "replace")


def try_case(stack: Stack, case: Case, max_upload_bytes: int) -> dict[str, Any]:
    """Send one case; the row says what came back and whether it is what the case expects."""
    base = stack.gateway_url if case.target == "gateway" else stack.rest_url
    request = case.build(max_upload_bytes)
    with httpx.Client(base_url=base, timeout=60) as client:
        try:
            response = client.post(request.path, **request.send_kwargs())
            status, text, message = response.status_code, response.text, error_message(response)
        except httpx.HTTPError as exc:
            status, text, message = 0, f"{type(exc).__name__}: {exc}", None
    leaked = leaks(
        text, [stack.admin_token, str(stack.repo)] if case.target == "gateway" else [stack.admin_token]
    )
    ok = status in case.expect and (status < 400 or message is not None) and not leaked
    return {
        "case": case.name,
        "target": case.target,
        "status": status,
        "expected": sorted(case.expect),
        "message": (message or text[:200]) if status >= 400 or status == 0 else "",
        "ok": ok,
        **({"leaks": leaked} if leaked else {}),
        **({"note": case.why} if case.why else {}),
    }


def try_declared_too_large(stack: Stack) -> dict[str, Any]:
    status, body = _declared_too_large(stack.gateway_url, TEXT)
    return {
        "case": "Content-Length of 1 TiB declared",
        "target": "gateway",
        "status": status,
        "expected": [413],
        "message": body[:200],
        "ok": status == 413 and not leaks(body),
    }


def run(stack: Stack, *, max_upload_bytes: int) -> Outcome:
    outcome = Outcome("hostile", "Hostile uploads")
    pids = stack.pids()
    start = {name: usage(pid).rss_bytes for name, pid in pids.items()}
    peak = dict(start)
    for case in CASES:
        row = try_case(stack, case, max_upload_bytes)
        outcome.cases.append(row)
        outcome.check(
            row["ok"],
            f"{case.target}: {case.name}: got {row['status']} {row['message'][:200]!r}, "
            f"expected {row['expected']}" + (f" (leaks {row['leaks']})" if row.get("leaks") else ""),
        )
        for name, pid in pids.items():
            peak[name] = max(peak[name], usage(pid).rss_bytes)
    row = try_declared_too_large(stack)
    outcome.cases.append(row)
    outcome.check(row["ok"], f"gateway: {row['case']}: got {row['status']} {row['message']!r}, expected 413")
    alive = bool(stack.gateway and stack.gateway.alive() and stack.modelserver and stack.modelserver.alive())
    outcome.check(alive, "a service died during the hostile uploads")
    growth = {name: peak[name] - start[name] for name in start}
    for name, grown in growth.items():
        outcome.check(
            grown <= RSS_BOUND_BYTES,
            f"{name} RSS grew by {grown / 2**20:.0f} MiB (bound {RSS_BOUND_BYTES / 2**20:.0f} MiB)",
        )
    outcome.figures = {
        "cases": len(outcome.cases),
        "as_expected": sum(1 for c in outcome.cases if c["ok"]),
        "server_errors_5xx": sum(1 for c in outcome.cases if c["status"] >= 500),
        "rss_growth_mib": {name: round(g / 2**20, 1) for name, g in growth.items()},
        "rss_bound_mib": RSS_BOUND_BYTES // 2**20,
        "services_alive": alive,
    }
    return outcome.finish()
