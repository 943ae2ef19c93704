"""Texts -> the raw UTF-8 of each text, one per row (the contract's ``kind: text`` input gets the text as is,
as a string tensor ``[n]`` or ``[n, 1]`` as the input's shape says: ``gateway.upstream.spec.TextInput``)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.errors import BadRequest, TooManyItems

__all__ = ["texts_to_bytes"]


def texts_to_bytes(texts: Sequence[str], *, max_items: int, max_chars: int) -> list[bytes]:
    """Validate and encode; each text must be non-blank and at most ``max_chars`` characters."""
    if not texts:
        raise BadRequest('"texts" is empty; send {"texts": ["some text", ...]}')
    if len(texts) > max_items:
        raise TooManyItems("texts", len(texts), max_items)
    encoded = []
    for index, text in enumerate(texts):
        if not text.strip():
            raise BadRequest(f"texts[{index}] is blank; send some text")
        if len(text) > max_chars:
            raise BadRequest(f"texts[{index}] has {len(text)} characters; at most {max_chars}")
        # Lone surrogates (possible in JSON) cannot be UTF-8: replace rather than fail.
        encoded.append(text.encode("utf-8", errors="replace"))
    return encoded
