"""JSON documents in and out of the REST APIs, as TensorFlow Serving's ``util/json_tensor.cc`` reads and writes
them: parsing a request body (NaN/Infinity accepted, integers kept exact), printing a reply (NaN/Infinity as
bare tokens), the error body, JSON values quoted in error messages, and ``{"b64": ...}`` objects. Shared by
the predict (``json_predict``, ``json_tensor``) and classify/regress (``json_examples``) codecs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import json
import math
import re
from collections.abc import Iterator
from typing import Any

import orjson

from modelserver.errors import InvalidArgument
from modelserver.protocols.tfs.json import scan

__all__ = [
    "BASE64_KEY",
    "REQUEST_KEYS",
    "RawJson",
    "Unbuilt",
    "decode_b64",
    "dumps",
    "error_json",
    "format_error",
    "is_b64_object",
    "json_type",
    "no_gc",
    "parse_json_object",
    "signature_name_of",
    "value_to_string",
]

BASE64_KEY = "b64"
_MAX_MESSAGE_VALUE_CHARS = 512  # TF Serving prints whole values in errors; we cap them (its own TODO)


def value_to_string(value: Any) -> str:
    """A JSON value as TF Serving prints it in error messages (rapidjson's pretty writer, 4-space indent)."""
    if isinstance(value, float):
        text = decimal_text(value)
    else:
        try:
            text = json.dumps(value, indent=4, ensure_ascii=False)
        except (RecursionError, ValueError, TypeError):  # TypeError: an Unbuilt value inside
            text = f"<{json_type(value)} nested too deeply to print>"
    if len(text) > _MAX_MESSAGE_VALUE_CHARS:
        text = text[:_MAX_MESSAGE_VALUE_CHARS] + "...(truncated)"
    return text


def json_type(value: Any) -> str:
    if isinstance(value, Unbuilt):
        return value.kind
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def format_error(doc: Any, text: str) -> InvalidArgument:
    return InvalidArgument(f"JSON Value: {value_to_string(doc)} {text}")


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building large acyclic structures (parsed JSON, reply lists).

    With TensorFlow imported the heap holds millions of tracked objects, and the collections that the
    allocation of a big JSON document triggers made ``json.loads`` ~6x slower. JSON values cannot form
    cycles, so nothing is lost; the GC runs again right after (and stays off if someone else turned it off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# An integer literal of 20+ digits: orjson would read one above 2^64 as a float; the stdlib keeps it exact.
_LONG_INTEGER = re.compile(rb"(?<![.\d])\d{20,}(?![.\deE])")
# The regex costs ~100 us on a 10 KB body of floats (half of parsing it); a body without any run of 20 digits
# cannot match it, and that is checked in ~5 us: every digit mapped to "0", then one substring search.
_DIGITS_AS_ZERO = bytes(ord("0") if ord("0") <= i <= ord("9") else i for i in range(256))
_TWENTY_DIGITS = b"0" * 20


def _has_long_integer(body: bytes) -> bool:
    return _TWENTY_DIGITS in body.translate(_DIGITS_AS_ZERO) and _LONG_INTEGER.search(body) is not None


# The keys TF Serving reads from a request body; values under any other key are checked, never built.
REQUEST_KEYS = frozenset({"signature_name", "instances", "inputs", "context", "examples"})
# A body nested deeper than Python's parsers go is checked by ``json.scan`` (~0.5 us per byte) up to this size;
# TF Serving's own test body (DeeplyNestedWellFormed) is 1 MB.
DEEP_SCAN_MAX_BYTES = 4 << 20
_TOO_DEEP = "JSON Parse error: The document is nested too deeply"


class Unbuilt:
    """A value in the body that was checked but not built: one nested deeper than a tensor can be, under a key
    the request does not read (or a ``signature_name`` that is no string). ``kind`` is its JSON type."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


class _TooDeep(Exception):
    pass


def parse_json_object(body: bytes, used: frozenset[str] = REQUEST_KEYS) -> dict[str, Any]:
    """Parse a request body; the top level must be an object (TF Serving's ParseJson, rapidjson's messages).

    As rapidjson with ``kParseStopWhenDoneFlag``, text after the root value is ignored. A body too deep for
    Python's parsers is checked whole by ``json.scan`` and only the values under ``used`` keys are built
    (with the usual nesting bound): the others become ``Unbuilt``.
    """
    if not body:
        raise InvalidArgument("JSON Parse error: The document is empty")
    if not body.strip():
        raise InvalidArgument(f"JSON Parse error: The document is empty. at offset: {len(body)}")
    try:
        doc = _loads(body)
    except _TooDeep:
        doc = _deep_loads(body, used)
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    return doc


def _loads(body: bytes) -> Any:
    try:
        if _has_long_integer(body):
            raise orjson.JSONDecodeError("long integer", "", 0)
        with no_gc():
            return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc):
            raise _TooDeep from None
        return _stdlib_loads(
            body
        )  # NaN/Infinity tokens, long integers, trailing text, or an error to explain


def _deep_loads(body: bytes, used: frozenset[str]) -> Any:
    if len(body) > DEEP_SCAN_MAX_BYTES:
        raise InvalidArgument(
            f"{_TOO_DEEP} (more than 1,000 levels in a body over {DEEP_SCAN_MAX_BYTES} bytes)"
        )
    try:
        members = scan.top_level_members(body)
    except scan.JsonSyntaxError as exc:
        raise InvalidArgument(f"JSON Parse error: Invalid value. at offset: {exc.offset}") from None
    if members is None:
        return Unbuilt("Array")
    doc: dict[str, Any] = {}
    for member in members:
        value = body[member.start : member.end]
        kind = "Object" if value.lstrip().startswith(b"{") else "Array"
        if member.key not in used:
            doc[member.key] = Unbuilt(kind)
            continue
        try:
            doc[member.key] = _loads(value)
        except _TooDeep:
            if member.key != "signature_name":
                raise InvalidArgument(f"{_TOO_DEEP} (under '{member.key}')") from None
            doc[member.key] = Unbuilt(kind)  # not a string: signature_name_of says so, as TF Serving does
    return doc


# Python's parse errors in rapidjson's words (GetParseError_En), which TF Serving puts in its message.
_RAPIDJSON_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Invalid \\escape": "Invalid escape character in string.",
}


def _parse_error(exc: json.JSONDecodeError, text: str, body: bytes) -> InvalidArgument:
    offset = len(text[: exc.pos].encode("utf-8", "surrogatepass"))  # rapidjson counts bytes
    if exc.msg == "Expecting ',' delimiter":
        in_array = scan.innermost_container(body[:offset]) == ord("[")
        message = (
            "Missing a comma or ']' after an array element."
            if in_array
            else ("Missing a comma or '}' after an object member.")
        )
    else:
        message = next((v for k, v in _RAPIDJSON_ERRORS.items() if exc.msg.startswith(k)), exc.msg)
        if message.startswith("Missing a closing quotation"):
            offset = len(body)  # rapidjson notices at the end of the input
    return InvalidArgument(f"JSON Parse error: {message} at offset: {offset}")


def _stdlib_loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from None
    # The stdlib parser takes NaN, Infinity and -Infinity, as rapidjson's kParseNanAndInfFlag does.
    decoder = json.JSONDecoder(parse_float=_finite_float)
    try:
        with no_gc():
            start = len(text) - len(text.lstrip(" \t\n\r"))
            value, _ = decoder.raw_decode(text, start)  # text after the value is ignored
            return value
    except json.JSONDecodeError as exc:
        raise _parse_error(exc, text, body) from None
    except RecursionError:
        raise _TooDeep from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise InvalidArgument(f"JSON Parse error: {exc}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400; the NaN/Infinity tokens do not come through here
        raise ValueError(f"Number too big to be stored in double: {text[:40]}")
    return value


def signature_name_of(doc: dict[str, Any]) -> str:
    """The optional ``signature_name`` ("" when absent: the server then uses serving_default)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise format_error(doc, "not formatted correctly. 'signature_name' key must be a string value.")
    return name


def decode_b64(value: Any) -> bytes:
    """``{"b64": "<standard base64>"}`` -> raw bytes (TF Serving's JsonDecodeBase64Object)."""
    if not is_b64_object(value):
        raise InvalidArgument(f"JSON Value: {value_to_string(value)} not formatted correctly for base64 data")
    text = value[BASE64_KEY]
    try:
        # absl::Base64Unescape accepts standard base64 with or without padding, never the URL-safe alphabet.
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidArgument("Unable to base64 decode") from None


def is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BASE64_KEY), str)


def decimal_text(value: float) -> str:
    """TF Serving's WriteDecimal for one double (used in messages only)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    return repr(value)


class RawJson:
    """JSON text written as is by ``dumps``: numbers whose text Python's float repr cannot give (TF Serving's
    ``%g`` notation, ``9e+06``), built by ``json.floats`` for the few replies that hold such numbers."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _HoldsRaw(Exception):
    pass


def _refuse_raw(value: Any) -> Any:
    if isinstance(value, RawJson):
        raise _HoldsRaw
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _plain(payload: Any) -> str:
    # allow_nan: NaN/Infinity are emitted as bare tokens, as TF Serving does (not strict JSON, on purpose).
    return json.dumps(payload, ensure_ascii=False, allow_nan=True, separators=(",", ":"), default=_refuse_raw)


def _compose(payload: Any) -> str:
    """``_plain`` for a payload holding RawJson: containers are joined here down to the raw values."""
    if isinstance(payload, RawJson):
        return payload.text
    try:
        return _plain(payload)
    except _HoldsRaw:
        pass
    if isinstance(payload, dict):
        return "{" + ",".join(f"{_plain(str(k))}:{_compose(v)}" for k, v in payload.items()) + "}"
    return "[" + ",".join(_compose(item) for item in payload) + "]"


def dumps(payload: Any) -> bytes:
    with no_gc():
        try:
            text = _plain(payload)
        except _HoldsRaw:  # rare: C speed for everything else, so only such replies pay for the join
            text = _compose(payload)
        return text.encode(
            "utf-8",
            "backslashreplace",  # a lone surrogate from the request becomes a \\uXXXX escape again
        )


def error_json(message: str) -> bytes:
    """The error body: only the status message, never the code name (TF Serving's MakeJsonFromStatus)."""
    return dumps({"error": message})
