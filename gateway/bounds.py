"""The bounds of a JSON inference body, checked before pydantic sees it (``json_value_bound`` before parsing,
``check_inputs`` after; ``gateway.schemas.parse_inputs`` applies them): pydantic builds one error object per
wrong value to report the first, so 250,000 wrong-typed values in a 488 KiB body cost +253 MiB and half a
second of the event loop. ``check_inputs`` stops at the first wrong value, with the message pydantic would
give for it.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import BadRequest, TooManyItems

__all__ = ["MAX_RECORD_FIELDS", "check_inputs", "json_value_bound", "max_json_values"]

MAX_RECORD_FIELDS = 256  # features per record (a model's contract names a few)
# a JSON string once its escaped backslashes and quotes are gone
_JSON_STRING = re.compile(rb'"[^"]*"')


def _structure(raw: bytes) -> int:
    return 2 * (raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1)


def json_value_bound(raw: bytes, limit: int) -> int:
    """An upper bound of the values and keys ``raw`` JSON holds (exact enough to compare with ``limit``),
    without parsing it: outside strings, every value after the first of an array or object follows a comma,
    and every array or object opens once. C-speed scans only: the strings are cut out (a regex, one match per
    string) only when their commas and brackets could matter, and only when there are at most ``limit``."""
    bound = _structure(raw)
    if bound <= limit:
        return bound  # commas and brackets inside strings only ever add
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    strings = unescaped.count(b'"') // 2
    if strings > limit:
        return strings
    return _structure(_JSON_STRING.sub(b"", unescaped))


def max_json_values(max_items: int) -> int:
    """The most values a texts or records body of ``max_items`` items may hold."""
    return 2 * (max_items * (MAX_RECORD_FIELDS + 2) + 8)


def _wrong(where: str, message: str) -> BadRequest:
    return BadRequest(f"wrong JSON shape at {where}: {message}")


def check_inputs(body: dict[str, Any], max_items: int) -> None:
    """The first problem of a ``{"texts": [...]}`` or ``{"records": [...]}`` body (counts before types),
    raised as pydantic would report it; the body models then validate a body known to be right."""
    key = "texts" if "texts" in body else "records"
    items = body.get(key)
    if not isinstance(items, list):
        raise _wrong(key, "Input should be a valid list")
    if len(items) > max_items:
        raise TooManyItems(key, len(items), max_items)
    for index, item in enumerate(items):
        if key == "texts":
            if not isinstance(item, str):
                raise _wrong(f"texts.{index}", "Input should be a valid string")
            continue
        if not isinstance(item, dict):
            raise _wrong(f"records.{index}", "Input should be a valid dictionary")
        if len(item) > MAX_RECORD_FIELDS:
            raise BadRequest(f"records[{index}] has {len(item)} features, over {MAX_RECORD_FIELDS}")
        for feature, value in item.items():
            # a number, a string (a category) or a list of them (a [-1, K] feature); which one a feature
            # needs is its contract's business (gateway.preprocess.tabular)
            values = value if type(value) is list else [value]
            if any(v is not None and type(v) not in (int, float, str) for v in values):
                raise _wrong(f"records.{index}.{feature}", "Input should be a valid number or string")
