"""Images -> a batch ``[n, height, width, channels]`` (float32 or uint8) as the model's input contract says.

Per file: decode with Pillow (PNG, JPEG, WebP, BMP, GIF - first frame), honour the EXIF orientation, bring
16-bit grey levels to 8 bits (scaled, not clipped), drop alpha by compositing on the contract's background,
convert to the model's channels (RGB, palette, CMYK -> L for one channel, a colour JPEG decoded straight to
its luma as TensorFlow's ``decode_jpeg(channels=1)`` does; L -> RGB for three), invert when the picture's
background is the opposite of the training data's (a dark garment photographed on a white table for a model
trained white-on-black), bring it to the model's size by the contract's ``resize`` rule, and map the pixel
levels 0..255 onto the contract's ``range`` (float32) or send them as they are (uint8).

Resize rules (``resize``): ``stretch`` scales both sides to the model's size (Keras ``Resizing`` and
``image_dataset_from_directory`` do this, so it is the default); ``pad`` keeps the aspect ratio and pads with
the background (the default when the contract names a ``background``: objects photographed on a plain
ground); ``crop`` keeps the aspect ratio and cuts the centre (``Resizing(crop_to_aspect_ratio=True)``). All
three resample bilinearly: Keras's ``Resizing`` and ``image_dataset_from_directory`` default to it, and
``python -m export`` trains, evaluates and warms up on photos read by the same rule (export/foreign/pixels.py;
tests/test_pixel_parity.py compares the two).

Limits: ``max_pixels`` is enforced BEFORE decoding, from the header: Pillow's own decompression-bomb check
(``MAX_IMAGE_PIXELS`` = the limit; it raises above twice the limit) plus the same test on the size Pillow read
(Pillow only warns between 1x and 2x) -> :class:`TooManyPixels` (413). Anything Pillow cannot
identify or
decode -> :class:`UnsupportedMediaType` (415). An empty file -> :class:`BadRequest` (400).

Memory: a picture's pixel count says little about what decoding it costs (two RGBA PNGs just under the pixel
limit took +907 MiB): Pillow keeps every multi-band mode in 4 bytes a pixel, and the alpha composite, the
conversion and the inversion each make a copy. ``decode_cost`` counts them from the headers (after the JPEG
draft, which lets the decoder shrink a photo by up to 8x a side while decoding) before anything is decoded;
``images_to_batch`` refuses a request whose pictures cost more than its :class:`DecodeBudget` in all (413)
and waits until the budget - shared by every request of the process - has room, so all decodes in flight
together stay within it.
"""

from __future__ import annotations

import functools
import io
import operator
import threading
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.errors import BadRequest, TooManyPixels, UnsupportedMediaType
from gateway.upstream.spec import ImageSpec  # the contract's image part: what this module produces

__all__ = [
    "FORMATS",
    "DecodeBudget",
    "ImageSpec",
    "centre_box",
    "decode_budget",
    "decode_cost",
    "decode_image",
    "images_to_batch",
    "small_images",
]

FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
RESAMPLE = Image.Resampling.BILINEAR  # the trainers' default (see above); Lanczos until 2026-12-07
# 16-bit grey (PNG: "I;16", or "I" in older Pillow) -> 8 bits, scaled: Pillow's own conversion clips at 255
_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I"})
_WIDE_SCALE = 255 / 65535
_LEVELS = range(256)
# Pixels up to which the border is summed from bytes (histograms beyond: C-speed on big bands).
_SMALL = 128 * 128


def _fill(spec: ImageSpec) -> int | tuple[int, ...]:
    level = 255 if spec.background == "white" else 0
    return level if spec.channels == 1 else (level,) * spec.channels


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    if not data:
        raise BadRequest(f"file {name!r} is empty; send the image bytes")
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        image.seek(0)  # GIF/WebP animations: the first frame
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixels(
            f"image {name!r} has more than {max_pixels} pixels; send a smaller picture"
        ) from None
    except UnidentifiedImageError:
        raise UnsupportedMediaType(
            f"file {name!r} is not a supported image; send PNG, JPEG, WebP, BMP or GIF"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnsupportedMediaType(f"file {name!r} could not be read as an image: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixels(
            f"image {name!r} has {width}x{height} pixels, over the limit of {max_pixels}; "
            "send a smaller picture"
        )
    return image


class DecodeBudget:
    """Bytes of image decoding in flight in the process, across worker threads: ``reserve(n)`` waits until
    ``n`` bytes are free (``n`` at most ``total``: a larger request is refused before it asks)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._free = threading.Condition()

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        size = min(size, self.total)
        with self._free:
            self._free.wait_for(lambda: self.used + size <= self.total)
            self.used += size
        try:
            yield
        finally:
            with self._free:
                self.used -= size
                self._free.notify_all()


_BUDGETS: dict[int, DecodeBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def decode_budget(total: int) -> DecodeBudget:
    """The process's budget of ``total`` bytes (one per distinct setting)."""
    with _BUDGETS_LOCK:
        return _BUDGETS.setdefault(total, DecodeBudget(total))


def _pixel_bytes(mode: str) -> int:
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def decode_cost(image: Image.Image, spec: ImageSpec) -> int:
    """Bytes decoding ``image`` (opened and drafted, not loaded) into ``spec`` may allocate in all: the
    decoded picture and its EXIF turn, the RGBA copy, canvas and composite of a transparent one, the
    converted picture, the inversion check's gray copy and the inverted copies."""
    width, height = image.size
    source, target = _pixel_bytes(image.mode), 1 if spec.channels == 1 else 4
    wide = 9 if image.mode in _WIDE_MODES else 0  # the 32-bit copy, its scaled copy, the 8-bit one
    per_pixel = 2 * source + wide + (12 if _has_alpha(image) else 0) + 1 + 3 * target
    return width * height * per_pixel


def _draft(image: Image.Image, spec: ImageSpec) -> None:
    # JPEG: let the decoder downscale by 1/2..1/8 while decoding (fast and light on big photos).
    image.draft("L" if spec.channels == 1 else "RGB", (spec.width * 2, spec.height * 2))


def decode_image(data: bytes, name: str, spec: ImageSpec, max_pixels: int) -> Image.Image:
    """Decode one file into a ``spec.mode`` image of exactly ``spec.width x spec.height``."""
    image = _open(data, name, max_pixels)
    _draft(image, spec)
    return _decode(image, name, spec)


def _decode(image: Image.Image, name: str, spec: ImageSpec) -> Image.Image:
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: otherwise a copy even when upright
        if image.mode in _WIDE_MODES:
            image = image.convert("I").point(lambda level: level * _WIDE_SCALE).convert("L")
        if _has_alpha(image):
            image = image.convert("RGBA")
            canvas = Image.new("RGBA", image.size, "white" if spec.background == "white" else "black")
            # A transparent background takes the training background; the subject stays.
            image = Image.alpha_composite(canvas, image)
        image = image.convert(spec.mode)
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnsupportedMediaType(f"file {name!r} could not be decoded: {exc}") from None
    if spec.background is not None and _needs_inversion(image, spec.background):
        image = ImageOps.invert(image if image.mode != "RGBA" else image.convert("RGB")).convert(spec.mode)
    return _resize(image, spec)


def _resize(image: Image.Image, spec: ImageSpec) -> Image.Image:
    size = (spec.width, spec.height)
    if image.size == size:
        return image
    if spec.resize == "crop":
        image = image.crop(centre_box(image.size, size))  # cut first: nothing outside the box bleeds in
    if spec.resize == "pad":
        return ImageOps.pad(image, size, method=RESAMPLE, color=_fill(spec))
    return image.resize(size, RESAMPLE)


def centre_box(have: tuple[int, int], want: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred box of ``have`` (width, height) with the aspect ratio of ``want``."""
    (w, h), (tw, th) = have, want
    if w * th > h * tw:  # wider than wanted: cut the sides
        cw, ch = max(1, round(h * tw / th)), h
    else:
        cw, ch = w, max(1, round(w * th / tw))
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def _needs_inversion(image: Image.Image, background: str) -> bool:
    """True when the border of the picture is bright while the model expects black (or the reverse)."""
    gray = image.convert("L")
    means = _border_means_of_bytes(gray) if gray.width * gray.height <= _SMALL else _border_means(gray)
    border = sum(means) / len(means)
    return border > 127 if background == "black" else border < 128


def _bands(gray: Image.Image) -> tuple[int, int, int]:
    w, h = gray.size
    return w, h, max(1, min(w, h) // 20)


def _border_means(gray: Image.Image) -> list[float]:
    """Mean level of the top, bottom, left and right bands (a twentieth of the short side), from histograms."""
    w, h, band = _bands(gray)
    means: list[float] = []
    for box in ((0, 0, w, band), (0, h - band, w, h), (0, 0, band, h), (w - band, 0, w, h)):
        hist = gray.crop(box).histogram()
        total: int = sum(map(operator.mul, hist, _LEVELS))
        means.append(total / (sum(hist) or 1))
    return means


def _border_means_of_bytes(gray: Image.Image) -> list[float]:
    """``_border_means`` from the pixel bytes (rows and strided columns): no crops, for small pictures."""
    w, h, band = _bands(gray)
    data = gray.tobytes()
    top, bottom = sum(data[: band * w]), sum(data[(h - band) * w :])
    left = sum(sum(data[k::w]) for k in range(band))
    right = sum(sum(data[w - band + k :: w]) for k in range(band))
    return [top / (band * w), bottom / (band * w), left / (band * h), right / (band * h)]


def images_to_batch(
    files: Sequence[tuple[str, bytes]], spec: ImageSpec, max_pixels: int, budget: DecodeBudget | None = None
) -> tuple[array[float] | bytes, list[int]]:
    """Decode, convert and scale every file; return the flat batch (float32 values, or the pixel bytes for a
    uint8 input) and its shape. With ``budget``, the pictures' ``decode_cost`` in all must fit in it (413) and
    is reserved while they decode."""
    opened = [(name, _open(data, name, max_pixels)) for name, data in files]  # headers only
    for _, image in opened:
        _draft(image, spec)
    cost = sum(decode_cost(image, spec) for _, image in opened)
    if budget is not None and cost > budget.total:
        raise TooManyPixels(
            f"the {len(files)} picture(s) would take {cost / 2**20:.0f} MiB to decode, over the "
            f"{budget.total / 2**20:.0f} MiB budget; send fewer or smaller pictures (or JPEG)"
        )
    dims = [len(files), spec.height, spec.width, spec.channels]
    if spec.dtype == "uint8":
        with budget.reserve(cost) if budget is not None else nullcontext():
            return b"".join(_decode(image, name, spec).tobytes() for name, image in opened), dims
    planes = _byte_planes(spec.low, spec.high)
    values = array("f")
    with budget.reserve(cost) if budget is not None else nullcontext():
        for name, image in opened:
            pixels = _decode(image, name, spec).tobytes()
            # pixel byte -> its float32 through a lookup table, one byte plane of the float at a time: each
            # plane is a bytes.translate and a strided copy, so no Python code runs per pixel
            packed = bytearray(4 * len(pixels))
            for offset, plane in enumerate(planes):
                packed[offset::4] = pixels.translate(plane)
            values.frombytes(packed)
    return values, dims


@functools.lru_cache(maxsize=16)
def _byte_planes(low: float, high: float) -> tuple[bytes, ...]:
    """For 0..255 scaled to ``low..high``: byte k of each level's native float32, as 4 translate tables."""
    scale = (high - low) / 255.0
    floats = array("f", [low + level * scale for level in range(256)]).tobytes()
    return tuple(floats[offset::4] for offset in range(4))


def small_images(files: Sequence[tuple[str, bytes]], budget: int, max_bytes: int = 16 * 1024) -> bool:
    """True when the files hold at most ``max_bytes`` in all and their headers declare at most ``budget``
    pixels in all (cheap enough to decode on the event loop). The byte bound comes first: Pillow reads a PNG's
    chunks one by one up to the image data, so a file stuffed with 10 MiB of empty chunks takes seconds to
    open (measured: 1.7 s, and as long again to decode); 16 KiB of them take about 3 ms. Reads headers only;
    anything unreadable is False, so the worker-thread path reports it."""
    if sum(len(data) for _, data in files) > max_bytes:
        return False
    total = 0
    for _, data in files:
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
        except Exception:  # decoded again (and reported) on the worker-thread path
            return False
        total += width * height
        if total > budget:
            return False
    return True
