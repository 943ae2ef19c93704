"""The inference routes' query parameters, defined once: ``k``, ``version`` and ``label``, their bounds, the
FastAPI ``Query`` declarations the routes use, and ``simple`` - the same rules as the hot path
(``gateway.middleware.hot_routes``) applies them to a raw query string without FastAPI.

Contract:
- ``version`` is 1..``VERSION_MAX``, ``k`` 1..``K_MAX`` (default ``K_DEFAULT``), ``label`` matches
  ``LABEL_PATTERN``; giving both ``version`` and ``label`` is a 400 (``check_choice``).
- ``simple`` accepts only what the route would accept unchanged (every parameter one the route declares,
  given once, plain decimal without sign or leading zeros, within the bounds) and returns None for anything
  else, which the hot path then leaves to the route (and its 422s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Query

from gateway.errors import BadRequest

__all__ = [
    "K_DEFAULT",
    "K_MAX",
    "LABEL_PATTERN",
    "VERSION_MAX",
    "KQuery",
    "LabelQuery",
    "Params",
    "VersionQuery",
    "check_choice",
    "simple",
]

K_DEFAULT, K_MAX, VERSION_MAX = 5, 1000, 2**63 - 1
LABEL_PATTERN = r"^[A-Za-z0-9_]+$"
VersionQuery = Query(None, ge=1, le=VERSION_MAX, description="serve with this version number")
KQuery = Query(K_DEFAULT, ge=1, le=K_MAX, description="how many labels per input, best first")
LabelQuery = Query(None, description="serve with the version that has this label", pattern=LABEL_PATTERN)

_NUMBER = re.compile(r"[1-9][0-9]{0,18}")  # what the route's int parameters take unchanged: no sign, no zeros
_LABEL = re.compile(LABEL_PATTERN.removeprefix("^").removesuffix("$"))


def check_choice(version: int | None, label: str | None) -> None:
    if version is not None and label is not None:
        raise BadRequest("give either version or label, not both")


@dataclass
class Params:
    k: int = K_DEFAULT
    version: int | None = None
    label: str | None = None


def simple(raw: bytes, allowed: frozenset[str]) -> Params | None:
    """The query's parameters as the route would validate them, or None when they are not that simple."""
    params, seen = Params(), set()
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key not in allowed or key in seen:
            return None
        seen.add(key)
        if key == "label":
            if not _LABEL.fullmatch(value):
                return None
            params.label = value
        elif not _NUMBER.fullmatch(value) or int(value) > (K_MAX if key == "k" else VERSION_MAX):
            return None
        elif key == "k":
            params.k = int(value)
        else:
            params.version = int(value)
    return params
