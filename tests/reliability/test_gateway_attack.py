"""reliability.gateway_attack on real processes, at a small scale: the gateway classes of issue 25 (names with
a newline, wrong-typed JSON values, many multipart files, RGBA PNGs, a dripping body, X-Forwarded-For) each
end in their 4xx with bounded memory and a neighbour served."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from reliability import gateway_attack
from reliability.outcome import Outcome
from reliability.stack import Stack

pytestmark = pytest.mark.e2e


def test_png_of_zeros_is_a_real_png_without_holding_its_pixels() -> None:
    png = gateway_attack.png_of_zeros(3000, 2000, 4)
    assert len(png) < 64 * 1024
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (3000, 2000) and image.mode == "RGBA"
        image.load()
        assert image.getextrema() == ((0, 0),) * 4


def test_gateway_classes_are_refused_with_bounded_cost(stack: Stack) -> None:
    outcome = Outcome("attack", "gateway round 2")
    figures = gateway_attack.run_steps(stack, outcome, quick=True)
    assert outcome.failures == [], figures
    assert figures["wrong_typed_json_status"] == 400 and figures["rgba_pngs_status"] == 413
    assert stack.gateway is not None and stack.gateway.alive()
