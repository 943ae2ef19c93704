"""A JSON document checked without building it, in linear time and at any depth (vectorised with numpy).

TF Serving parses request bodies with rapidjson's iterative parser, so a value nested 500,000 levels deep under
a key it never reads (``{"instances": [1], "nested": [[[...]]]}``, ``json_tensor_test.cc``
DeeplyNestedWellFormed) is accepted. Python's parsers recurse (orjson stops at 1,024 levels), so when a body
is too deep for them ``parse_json_object`` asks ``top_level_members`` instead: it checks the whole document
against JSON's grammar without building any of it (strings, escapes, numbers, brackets, commas and colons,
each a numpy pass over the bytes) and returns where each top-level member's value lies. The caller then builds
only the values it reads, with the usual nesting bound, and skips the others: an ignored value costs a few
passes over its bytes, never a Python object per level.

Like rapidjson with ``kParseStopWhenDoneFlag``, text after the root value is not looked at.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["JsonSyntaxError", "Member", "innermost_container", "top_level_members"]


class JsonSyntaxError(ValueError):
    """The document is not JSON; ``offset`` is the byte where the first problem was seen."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"invalid JSON at offset {offset}")
        self.offset = offset


@dataclass(frozen=True)
class Member:
    """One top-level member: its key and its value's bytes ``body[start:end]`` (trailing blanks included)."""

    key: str
    start: int
    end: int


# Token codes: opening/closing brackets, separators, and whole strings / scalars as one token each.
_OA, _OO, _CA, _CO, _COMMA, _COLON, _STR, _SCALAR = range(8)
_NONE = 8  # before the first token


def _allowed(in_array: bool, prev2: int, prev: int, cur: int) -> bool:
    """Whether token ``cur`` may follow ``prev`` (and ``prev2`` before it) inside an array or an object."""
    starts, ends = (_OA, _OO, _STR, _SCALAR), (_CA, _CO, _STR, _SCALAR)
    if in_array:
        if cur in starts:
            return prev in (_OA, _COMMA)
        return (cur == _COMMA and prev in ends) or (cur == _CA and (prev in ends or prev == _OA))
    value_end = prev in ends and (prev != _STR or prev2 == _COLON)  # a string ends a value after ':' only
    if cur == _STR:
        return prev in (_OO, _COMMA, _COLON)
    if cur in starts:
        return prev == _COLON
    if cur == _COLON:
        return prev == _STR and prev2 in (_OO, _COMMA)
    return (cur == _COMMA and value_end) or (cur == _CO and (value_end or prev == _OO))


# Indexed by ((context * 9 + prev2) * 9 + prev) * 8 + cur, context 0 array, 1 object, 2 none (never allowed).
_ALLOWED = np.array(
    [
        context < 2 and _allowed(context == 0, prev2, prev, cur)
        for context in range(3)
        for prev2 in range(9)
        for prev in range(9)
        for cur in range(8)
    ],
    dtype=bool,
)
_STRUCT = np.full(256, -1, dtype=np.int8)
for _char, _code in zip(b"[{]},:", (_OA, _OO, _CA, _CO, _COMMA, _COLON), strict=True):
    _STRUCT[_char] = _code
_WORD = np.zeros(256, dtype=bool)
_WORD[np.frombuffer(b"+-.0123456789" + bytes(range(ord("a"), ord("z") + 1)), dtype=np.uint8)] = True
_WORD[ord("A") : ord("Z") + 1] = True
_BLANK = np.zeros(256, dtype=bool)
_BLANK[np.frombuffer(b" \t\n\r", dtype=np.uint8)] = True
_ESCAPED = np.zeros(256, dtype=bool)
_ESCAPED[np.frombuffer(b'"\\/bfnrtu', dtype=np.uint8)] = True
_HEX = np.zeros(256, dtype=bool)
_HEX[np.frombuffer(b"0123456789abcdefABCDEF", dtype=np.uint8)] = True
# A scalar: a JSON number, a literal, or NaN/Infinity (rapidjson's kParseNanAndInfFlag, Python's parser).
_WORD_TEXT = re.compile(
    rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null|NaN|-?Infinity"
)


def _first(mask: np.ndarray, positions: np.ndarray | None = None) -> int | None:
    hits = np.flatnonzero(mask)
    if not hits.size:
        return None
    return int(hits[0] if positions is None else positions[hits[0]])


def _earliest(*offsets: int | None) -> int | None:
    return min((o for o in offsets if o is not None), default=None)


def _strings(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(backslashes right before each byte, unescaped quotes, inside-a-string mask from an opening quote up
    to its closing quote excluded)."""
    n = data.size
    index = np.arange(n)
    backslash = data == ord("\\")
    last_plain = np.maximum.accumulate(np.where(backslash, -1, index))
    run_before = np.zeros(n, dtype=np.int64)
    run_before[1:] = index[:-1] - last_plain[:-1]
    quote = (data == ord('"')) & (run_before % 2 == 0)
    return run_before, quote, np.cumsum(quote) % 2 == 1


def _root_end(data: np.ndarray) -> int:
    """Bytes up to the end of the root container (rapidjson stops there); JsonSyntaxError when it never ends."""
    _, quote, inside = _strings(data)
    outside = ~inside & ~quote
    delta = (outside & ((data == ord("[")) | (data == ord("{")))).astype(np.int64)
    delta -= outside & ((data == ord("]")) | (data == ord("}")))
    closed = np.flatnonzero((np.cumsum(delta) == 0) & (delta != 0))
    if not closed.size:
        raise JsonSyntaxError(data.size)
    return int(closed[0]) + 1


def _tokens(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token byte offsets, token codes, string mask) of ``data``; JsonSyntaxError for bad strings/words."""
    n = data.size
    run_before, quote, inside = _strings(data)
    backslash = data == ord("\\")
    if n and inside[-1]:
        raise JsonSyntaxError(n)
    opening = quote & inside
    content = inside & ~opening
    bad = _first(content & (data < 0x20))
    escapes = np.flatnonzero(content & backslash & (run_before % 2 == 0))
    if escapes.size:
        after = data[escapes + 1]
        bad = _earliest(bad, _first(~_ESCAPED[after], escapes))
        unicode = escapes[after == ord("u")]
        for k in range(2, 6):
            digits = np.minimum(unicode + k, n - 1)
            bad = _earliest(bad, _first(~_HEX[data[digits]] | (unicode + k >= n), unicode))
    if bad is not None:
        raise JsonSyntaxError(bad)
    outside = ~inside & ~quote
    struct = np.where(outside, _STRUCT[data], -1)
    word = outside & _WORD[data]
    stray = _first(outside & (struct < 0) & ~word & ~_BLANK[data])
    if stray is not None:
        raise JsonSyntaxError(stray)
    words = np.where(word, data, ord("\n")).astype(np.uint8).tobytes()
    for text in set(words.split()):  # few distinct scalars in a document deep enough to come here
        if _WORD_TEXT.fullmatch(text) is None:
            raise JsonSyntaxError(words.index(text))
    word_start = word & ~np.concatenate(([False], word[:-1]))
    positions = np.flatnonzero((struct >= 0) | opening | word_start)
    codes = np.where(opening[positions], _STR, np.where(word_start[positions], _SCALAR, struct[positions]))
    return positions, codes.astype(np.int8), inside


def _grammar(codes: np.ndarray, positions: np.ndarray) -> None:
    """JsonSyntaxError where the tokens of one root value (codes cut at its end) break JSON's grammar."""
    opens = (codes == _OA) | (codes == _OO)
    delta = opens.astype(np.int64) - ((codes == _CA) | (codes == _CO))
    after = np.cumsum(delta)
    before = after - delta
    count = codes.size
    if not opens.any():
        if count != 1 or codes[0] not in (_STR, _SCALAR):
            raise JsonSyntaxError(int(positions[min(1, count - 1)]))
        return
    # The container of token i: the latest open token whose depth after it is token i's depth before it.
    open_index = np.flatnonzero(opens)
    keys = after[open_index] * (count + 1) + open_index
    order = np.argsort(keys, kind="stable")
    found = np.searchsorted(keys[order], before * (count + 1) + np.arange(count)) - 1
    container = open_index[order][np.maximum(found, 0)]
    context = np.where((before > 0) & (found >= 0) & (after[container] == before), codes[container], -1)
    prev = np.concatenate(([_NONE], codes[:-1]))
    prev2 = np.concatenate(([_NONE, _NONE], codes[:-2]))
    kind = np.where(context == _OA, 0, np.where(context == _OO, 1, 2))
    ok = _ALLOWED[((kind * 9 + prev2) * 9 + prev) * 8 + codes]
    ok[0] = codes[0] in (_OA, _OO, _STR, _SCALAR)
    bad = _first(~ok, positions)
    if bad is not None:
        raise JsonSyntaxError(bad)


def _root(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of the root container (text after it is ignored), grammar checked."""
    positions, codes, _ = _tokens(data[: _root_end(data)])
    _grammar(codes, positions)
    return positions, codes


def top_level_members(body: bytes) -> list[Member] | None:
    """The members of a root object, checked at any depth; None when the root is not an object."""
    data = np.frombuffer(body, dtype=np.uint8)
    first = _first(~_BLANK[data])
    if first is None or data[first] != ord("{"):
        return None
    positions, codes = _root(data)
    if codes[0] != _OO:
        return None
    depth = np.cumsum(((codes == _OA) | (codes == _OO)).astype(np.int64) - ((codes == _CA) | (codes == _CO)))
    # At depth 1 after the root's '{': key, ':', value..., then ',' or the closing '}'.
    separators = np.flatnonzero((depth == 1) & (codes == _COMMA))
    bounds = [0, *separators.tolist(), codes.size - 1]
    members: list[Member] = []
    if codes.size == 2:  # {}
        return members
    for first, last in itertools.pairwise(bounds):
        key_at, colon_at = first + 1, first + 2
        key = json.loads(body[positions[key_at] : positions[colon_at]])
        members.append(Member(key, int(positions[colon_at]) + 1, int(positions[last])))
    return members


def innermost_container(prefix: bytes) -> int | None:
    """The bracket (``[`` or ``{``) enclosing the end of ``prefix``, a JSON text cut short; None at top."""
    data = np.frombuffer(prefix, dtype=np.uint8)
    _, quote, inside = _strings(data)
    outside = ~inside & ~quote
    opens = outside & ((data == ord("[")) | (data == ord("{")))
    depth = np.cumsum(opens.astype(np.int64) - (outside & ((data == ord("]")) | (data == ord("}")))))
    if not depth.size or depth[-1] <= 0:
        return None
    candidates = np.flatnonzero(opens & (depth == depth[-1]))
    return int(data[candidates[-1]]) if candidates.size else None
