"""modelserver.protocols.tfs.json.scan: the unbuilt check of a JSON document agrees with a real parser.

Seeded random documents and one-byte mutations of them: the scan accepts exactly what Python's parser accepts
(``raw_decode``: text after the root is ignored, as rapidjson's kParseStopWhenDoneFlag), and the members it
returns are the document's own.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from modelserver.protocols.tfs.json.scan import JsonSyntaxError, innermost_container, top_level_members

_MUTATIONS = '[]{},:"\\ 0123456789.eE+-ntrufalsNIy\t\x01'


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([0, -1, 12, 1.5, -2.5e-7, 1e300, True, False, None])
    if kind == 1:
        return rng.choice(["", "a", 'q"uote', "back\\slash", "\u00e9", "\n\t", "]}"])
    if kind in (2, 3):
        return rng.randrange(-1000, 1000)
    if kind in (4, 5):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _value(rng, depth + 1) for i in range(rng.randrange(4))}


def _document(rng: random.Random) -> str:
    doc = {f"key{i}": _value(rng, 0) for i in range(rng.randrange(1, 4))}
    return json.dumps(doc, indent=rng.choice([None, 1]), separators=rng.choice([None, (",", ":")]))


def _python_accepts(text: str) -> dict[str, Any] | None:
    try:
        value, _ = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip(" \t\n\r")))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _scan(text: str) -> dict[str, Any] | None:
    body = text.encode("utf-8")
    try:
        members = top_level_members(body)
    except JsonSyntaxError:
        return None
    if members is None:
        return None
    return {m.key: json.loads(body[m.start : m.end]) for m in members}


@pytest.mark.parametrize("seed", range(4))
def test_scan_accepts_what_a_parser_accepts(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        text = _document(rng)
        assert _scan(text) == json.loads(text)
        for _ in range(3):
            at = rng.randrange(len(text))
            mutated = text[:at] + rng.choice(_MUTATIONS) + text[at + rng.randrange(2) :]
            if not mutated.lstrip().startswith("{"):
                continue
            expected = _python_accepts(mutated)
            assert (_scan(mutated) is not None) == (expected is not None), mutated
            if expected is not None:
                assert json.dumps(_scan(mutated), sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_depth_costs_no_recursion() -> None:
    deep = 200_000
    body = b'{"a": 1, "deep": ' + b"[" * deep + b"{}" + b"]" * deep + b"}"
    members = top_level_members(body)
    assert members is not None and [m.key for m in members] == ["a", "deep"]
    with pytest.raises(JsonSyntaxError):
        top_level_members(body.replace(b"{}", b"{,}"))


def test_not_an_object_is_none() -> None:
    assert top_level_members(b" [1, 2]") is None


@pytest.mark.parametrize(
    ("prefix", "bracket"),
    [(b'{"a": [1, 2', "["), (b'{"a": [1, 2], "b"', "{"), (b'{"a": "[', "{"), (b"1", None)],
)
def test_innermost_container(prefix: bytes, bracket: str | None) -> None:
    found = innermost_container(prefix)
    assert (chr(found) if found is not None else None) == bracket
