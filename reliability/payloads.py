"""Valid requests for the three published models (fashion images, SMS texts, housing records), and hostile
files built in memory. Everything is deterministic: the same seed gives the same bytes."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

__all__ = ["HOUSING_RECORD", "Request", "image_bytes", "mixed_requests", "valid_requests"]

HOUSING_RECORD: dict[str, float] = {
    "longitude": -122.23,
    "latitude": 37.88,
    "housing_median_age": 41.0,
    "total_rooms": 880.0,
    "total_bedrooms": 129.0,
    "population": 322.0,
    "households": 126.0,
    "median_income": 8.3252,
}


@dataclass(frozen=True)
class Request:
    """One gateway call: ``POST {path}`` with either ``json`` or multipart ``files``."""

    name: str
    path: str
    json: Any = None
    files: list[tuple[str, tuple[str, bytes, str]]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None

    def send_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if self.content is not None:
            kwargs["content"] = self.content
        elif self.files:
            kwargs["files"] = self.files
        elif self.json is not None:
            kwargs["json"] = self.json
        return kwargs


def image_bytes(size: tuple[int, int] = (28, 28), fmt: str = "PNG", seed: int = 0, mode: str = "L") -> bytes:
    """A small garment-like picture: a bright blob on black."""
    rng = random.Random(seed)
    image = Image.new(mode, size, 0)
    w, h = size
    x0, y0 = rng.randint(0, w // 4), rng.randint(0, h // 4)
    fill = 200 if mode == "L" else (200, 200, 200)
    image.paste(fill, (x0, y0, x0 + w // 2, y0 + h // 2))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def valid_requests(seed: int = 0) -> list[Request]:
    rng = random.Random(seed)
    record = {k: v * rng.uniform(0.9, 1.1) for k, v in HOUSING_RECORD.items()}
    png = image_bytes(seed=seed)
    return [
        Request(
            "fashion:classify", "/v1/models/fashion:classify", files=[("file", ("a.png", png, "image/png"))]
        ),
        Request(
            "fashion:predict", "/v1/models/fashion:predict", files=[("file", ("a.png", png, "image/png"))]
        ),
        Request(
            "text:classify", "/v1/models/text:classify", json={"texts": [f"free prize {rng.randint(0, 99)}"]}
        ),
        Request("text:predict", "/v1/models/text:predict", json={"texts": ["see you at 6", "WIN CASH now"]}),
        Request("housing:regress", "/v1/models/housing:regress", json={"records": [record]}),
        Request("housing:predict", "/v1/models/housing:predict", json={"records": [record, HOUSING_RECORD]}),
    ]


def mixed_requests(count: int, seed: int = 0, models: list[str] | None = None) -> list[Request]:
    """``count`` valid requests spread evenly over the models (default: all three) and their verbs, in
    random order."""
    rng = random.Random(seed)
    pool = [
        r
        for s in range(8)
        for r in valid_requests(seed + s)
        if models is None or r.name.split(":")[0] in models
    ]
    return [pool[rng.randrange(len(pool))] for _ in range(count)]
