"""examples/: the README's sample images are the real Fashion-MNIST test images its table names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from devtools.fashion import FASHION_LABELS, fashion_test_images

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROWS = re.findall(r"^\| `([\w-]+\.png)` \| ([^|]+?) \| (\d+) \|$", (EXAMPLES / "README.md").read_text(), re.M)


def test_every_example_is_listed_once() -> None:
    assert sorted(name for name, _, _ in ROWS) == sorted(p.name for p in EXAMPLES.glob("*.png"))
    assert sorted(label for _, label, _ in ROWS) == sorted(FASHION_LABELS)


@pytest.mark.parametrize(("name", "label", "index"), ROWS)
def test_example_is_the_dataset_image(data_dir: Path, name: str, label: str, index: str) -> None:
    ((expected, label_index),) = fashion_test_images(data_dir, 1, start=int(index))
    with Image.open(EXAMPLES / name) as image:
        assert (image.mode, image.size) == ("L", (28, 28))
        assert image.tobytes() == expected.tobytes()
    assert FASHION_LABELS[label_index] == label


def test_readme_curl_uses_a_shipped_example() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    used = set(re.findall(r"file=@([\w./-]+\.png)", readme))
    assert used and all((EXAMPLES.parent / path).is_file() for path in used), used
