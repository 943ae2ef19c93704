"""What every reply must be: no traceback, no internal address or server path, and for errors a body that
says what went wrong (the gateway's ``{"error": {"code", "message"}}``, TF Serving's ``{"error": "..."}``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import httpx

__all__ = ["error_message", "leaks"]

_LEAKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("traceback", re.compile(r"Traceback \(most recent call last\)|File \"/[^\"]+\", line \d+")),
    ("address", re.compile(r"\b(?:127\.\d+\.\d+\.\d+|0\.0\.0\.0|localhost|\[::1?\])(?::\d+)?\b|\bipv[46]:")),
    ("exception", re.compile(r"\b(?:RecursionError|KeyError|AttributeError|TypeError|AssertionError)\b")),
)


def leaks(text: str, secrets: Iterable[str] = ()) -> list[str]:
    """The kinds of internal detail ``text`` gives away (empty when clean). ``secrets``: strings that must
    never appear (server paths, tokens)."""
    found = [kind for kind, pattern in _LEAKS if pattern.search(text)]
    found.extend(f"secret:{s[:24]}" for s in secrets if s and s in text)
    return found


def error_message(response: httpx.Response) -> str | None:
    """The error message of a gateway or modelserver error reply; None when the body has none."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        message, code = error.get("message"), error.get("code")
        return message if isinstance(message, str) and message and isinstance(code, str) else None
    return error if isinstance(error, str) and error else None
