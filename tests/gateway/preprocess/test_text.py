"""gateway.preprocess.text."""

from __future__ import annotations

import pytest

from gateway.errors import BadRequest, TooManyItems
from gateway.preprocess.text import texts_to_bytes


def test_texts_are_utf8_as_is() -> None:
    assert texts_to_bytes(["héllo", " x "], max_items=5, max_chars=10) == ["héllo".encode(), b" x "]


@pytest.mark.parametrize(
    ("texts", "error"),
    [([], BadRequest), (["ok", "  "], BadRequest), (["x" * 11], BadRequest), (["a"] * 6, TooManyItems)],
)
def test_bad_texts(texts: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        texts_to_bytes(texts, max_items=5, max_chars=10)


def test_lone_surrogate_does_not_crash() -> None:
    assert texts_to_bytes(["a\ud800b"], max_items=1, max_chars=10) == [b"a?b"]
