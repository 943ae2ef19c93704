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

__all__ = [
    "BASE64_KEY",
    "decode_b64",
    "dumps",
    "error_json",
    "format_error",
    "is_b64_object",
    "json_type",
    "lossy_error",
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
        except (RecursionError, ValueError):
            text = f"<{json_type(value)} nested too deeply to print>"
    if len(text) > _MAX_MESSAGE_VALUE_CHARS:
        text = text[:_MAX_MESSAGE_VALUE_CHARS] + "...(truncated)"
    return text


def json_type(value: Any) -> str:
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


def lossy_error(value: Any, target: str) -> InvalidArgument:
    return InvalidArgument(
        f"Cannot convert JSON value: {value_to_string(value)} to {target} without loss of precision."
    )


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


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body; the top level must be an object (TF Serving's ParseJson)."""
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        if _has_long_integer(body):
            raise orjson.JSONDecodeError("long integer", "", 0)
        with no_gc():
            doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc):
            raise InvalidArgument("JSON Parse error: The document is nested too deeply") from None
        doc = _stdlib_loads(body)  # NaN/Infinity tokens, or an error to explain
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    return doc


def _stdlib_loads(body: bytes) -> Any:
    try:
        # The stdlib parser takes NaN, Infinity and -Infinity, as rapidjson's kParseNanAndInfFlag does.
        with no_gc():
            return json.loads(body, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from None
    except RecursionError:
        raise InvalidArgument("JSON Parse error: The document is nested too deeply") from None
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


def dumps(payload: Any) -> bytes:
    # allow_nan: NaN/Infinity are emitted as bare tokens, as TF Serving does (not strict JSON, on purpose).
    with no_gc():
        return json.dumps(payload, ensure_ascii=False, allow_nan=True, separators=(",", ":")).encode(
            "utf-8",
            "backslashreplace",  # a lone surrogate from the request becomes a \\uXXXX escape again
        )


def error_json(message: str) -> bytes:
    """The error body: only the status message, never the code name (TF Serving's MakeJsonFromStatus)."""
    return dumps({"error": message})
