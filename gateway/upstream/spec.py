"""``Contract``: a model version's input contract as typed values, parsed once from its JSON
(docs/architecture.md, "The input contract"), and the rule that maps what people send onto its inputs.

Every input has one kind::

    Input
    ├── ImageInput    kind "image" with a usable size: ``ImageSpec`` (size, channels, dtype, range, resize)
    ├── TextInput     kind "text": a string tensor [-1] or [-1, 1], one UTF-8 text per row
    ├── NumericInput  kind "numeric": float32 [-1] / [-1, 1] (a number per record) or [-1, K] (a list of K)
    └── OtherInput    anything else (another rank or dtype, an image without a size, ...) and why

A request maps onto a model only when every input is of the kind it sends: files need exactly one image
input, texts exactly one text input, records only numeric inputs (``for_images`` / ``for_texts`` /
``for_records``). Anything else is :class:`InputsNotMappable` (400), which lists the inputs and points at the
model server's own Predict: the gateway never guesses a value for an input.

Parsing never fails: a field the gateway cannot use makes its input an ``OtherInput`` (so texts still work
for a model whose unused image input is odd), and a request that needs it gets the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.errors import BadRequest, InputsNotMappable, UnsupportedMediaType

__all__ = [
    "FEATURE_DTYPES",
    "IMAGE_DTYPES",
    "RESIZE",
    "ROW_SHAPES",
    "Contract",
    "ImageInput",
    "ImageSpec",
    "Input",
    "NumericInput",
    "OtherInput",
    "TextInput",
    "parse_input",
]

# Shapes a text or numeric input may have: one value per row, as a vector or as a column (Keras' usual
# ``Input((1,))``).
ROW_SHAPES: tuple[tuple[int, ...], ...] = ((-1,), (-1, 1))
# The dtypes a record feature may have (besides string): what JSON numbers become without loss of meaning.
FEATURE_DTYPES: tuple[str, ...] = ("float32", "float64", "int32", "int64")


RESIZE: tuple[str, ...] = ("stretch", "pad", "crop")
IMAGE_DTYPES: tuple[str, ...] = ("float32", "uint8")


@dataclass(frozen=True)
class ImageSpec:
    """The image part of an input contract (docs/architecture.md, "The input contract").

    ``low`` / ``high`` are the values pixel levels 0 and 255 map to (``range``); a uint8 input takes the
    levels themselves, so its range is [0, 255]."""

    height: int
    width: int
    channels: int
    low: float = 0.0
    high: float = 1.0
    background: str | None = None  # "black" | "white" | None (no inversion, pad with black)
    dtype: str = "float32"  # one of IMAGE_DTYPES
    resize: str = "stretch"  # one of RESIZE

    @classmethod
    def from_contract(cls, spec: dict[str, Any]) -> ImageSpec:
        """Parse one ``kind: image`` input; BadRequest names what the gateway cannot use."""
        shape = list(spec.get("shape") or [])
        try:
            height = int(spec.get("height") or (shape[1] if len(shape) == 4 else 0))
            width = int(spec.get("width") or (shape[2] if len(shape) == 4 else 0))
            channels = int(spec.get("channels") or (shape[3] if len(shape) == 4 else 0))
            dtype = str(spec.get("dtype") or "float32")
            default = (0.0, 255.0) if dtype == "uint8" else (0.0, 1.0)
            low, high = (float(v) for v in spec.get("range") or default)
        except (TypeError, ValueError):
            raise BadRequest(f"the model's image input is not described usably: {spec}") from None
        if height <= 0 or width <= 0 or channels not in (1, 3, 4):
            raise BadRequest(f"the model's image input has no usable size ({height}x{width}x{channels})")
        if dtype not in IMAGE_DTYPES:
            raise BadRequest(
                f"the model's image input is {dtype}; the gateway sends {' or '.join(IMAGE_DTYPES)}"
            )
        if dtype == "uint8" and (low, high) != (0.0, 255.0):
            raise BadRequest(f"a uint8 image input takes pixel levels as they are, not range [{low}, {high}]")
        background = spec.get("background")
        background = background if background in ("black", "white") else None
        resize = str(spec.get("resize") or ("pad" if background else "stretch"))
        if resize not in RESIZE:
            raise BadRequest(f"the model's resize rule {resize!r} is not one of {', '.join(RESIZE)}")
        return cls(height, width, channels, low, high, background, dtype, resize)

    @property
    def mode(self) -> str:
        return {1: "L", 3: "RGB", 4: "RGBA"}[self.channels]


@dataclass(frozen=True)
class _Input:
    kind: ClassVar[str]
    name: str
    dtype: str
    shape: tuple[int, ...] | None  # None: unknown rank

    def describe(self) -> str:
        shape = "?" if self.shape is None else list(self.shape)
        return f"{self.name} ({self.dtype} {shape}, {self.kind})"

    @property
    def trailing(self) -> tuple[int, ...]:
        """The dims after the batch one: () for [-1], (K,) for [-1, K]."""
        return self.shape[1:] if self.shape is not None else ()

    def get(self, key: str, default: Any = None) -> Any:
        """What ``validate_records`` reads of a record feature: ``dtype``, ``width``, ``missing``."""
        if key == "width":
            return self.trailing[0] if self.trailing else 1
        return self.dtype if key == "dtype" else default


@dataclass(frozen=True)
class ImageInput(_Input):
    kind = "image"
    image: ImageSpec


@dataclass(frozen=True)
class TextInput(_Input):
    kind = "text"

    def row_dims(self, rows: int) -> list[int]:
        """The dims of a tensor holding ``rows`` texts ([n], or [n, 1] for a [-1, 1] input)."""
        return [rows, 1] if self.shape is not None and len(self.shape) == 2 else [rows]


@dataclass(frozen=True)
class NumericInput(_Input):
    kind = "numeric"
    missing: str | None = None  # "NaN": a missing value is sent as NaN (the model imputes it)
    fields: Mapping[str, Any] = field(default_factory=dict)  # description, unit, example, ...

    def get(self, key: str, default: Any = None) -> Any:
        """The contract's field ``key`` (``validate_records`` reads ``dtype``, ``width`` and ``missing``)."""
        if key == "missing":
            return self.missing
        return super().get(key, default) if key in ("dtype", "width") else self.fields.get(key, default)


@dataclass(frozen=True)
class OtherInput(_Input):
    kind = "other"
    why: str = "not an image, text or numeric input"


Input = ImageInput | TextInput | NumericInput | OtherInput


def _shape(raw: Any) -> tuple[int, ...] | None:
    if not isinstance(raw, list | tuple) or not all(isinstance(d, int) for d in raw):
        return None
    return tuple(raw)


def parse_input(name: str, spec: Mapping[str, Any]) -> Input:
    """One entry of the contract's ``inputs``."""
    kind, shape = spec.get("kind"), _shape(spec.get("shape"))
    dtype = str(spec.get("dtype") or ("string" if kind == "text" else "float32"))
    if kind == "image":
        try:
            image = ImageSpec.from_contract(dict(spec))
        except BadRequest as exc:
            return OtherInput(name, dtype, shape, exc.message)
        return ImageInput(name, dtype, shape, image)
    if kind == "text":
        if shape is not None and shape not in ROW_SHAPES:
            return OtherInput(name, dtype, shape, "a text input must be a string tensor [-1] or [-1, 1]")
        return TextInput(name, dtype, shape)
    if kind == "numeric":
        vector = shape is not None and len(shape) == 2 and shape[0] == -1 and shape[1] > 0
        if dtype not in FEATURE_DTYPES or (shape is not None and shape not in ROW_SHAPES and not vector):
            why = f"a record feature must be {', '.join(FEATURE_DTYPES)} of shape [-1], [-1, 1] or [-1, K]"
            return OtherInput(name, dtype, shape, why)
        extra = {k: v for k, v in spec.items() if k not in ("kind", "dtype", "shape", "missing")}
        missing = spec.get("missing")
        return NumericInput(name, dtype, shape, str(missing) if missing is not None else None, extra)
    return OtherInput(
        name, dtype, shape, str(spec.get("why") or f"kind {kind!r} is not one the gateway builds")
    )


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Contract:
    """The typed contract of one model version (``raw`` is the JSON as the model gave it)."""

    model: str
    raw: Mapping[str, Any]
    task: str
    labels: tuple[str, ...]
    inputs: dict[str, Input]
    predict_signature: str = "serving_default"
    predict_outputs: tuple[str, ...] = ()
    classify_signature: str | None = None
    regress_signature: str | None = None
    unit: str | None = None

    @classmethod
    def parse(cls, model: str, raw: Mapping[str, Any]) -> Contract:
        inputs = _section(raw, "inputs")
        predict = _section(raw, "predict")
        labels = raw.get("labels")
        return cls(
            model=model,
            raw=raw,
            task=str(raw.get("task") or "unknown"),
            labels=tuple(str(x) for x in labels) if isinstance(labels, list) else (),
            inputs={k: parse_input(str(k), v if isinstance(v, dict) else {}) for k, v in inputs.items()},
            predict_signature=str(predict.get("signature") or "serving_default"),
            predict_outputs=tuple(str(x) for x in predict.get("outputs") or ()),
            classify_signature=_section(raw, "classify").get("signature"),
            regress_signature=_section(raw, "regress").get("signature"),
            unit=(str(_section(raw, "output")["unit"]) if _section(raw, "output").get("unit") else None),
        )

    def describe(self) -> str:
        return ", ".join(i.describe() for i in self.inputs.values()) or "none"

    def hint(self) -> str:
        """What to send this model through the gateway."""
        kinds = {i.kind for i in self.inputs.values()}
        if kinds == {"image"} and len(self.inputs) == 1:
            return "upload images as multipart field 'file'"
        if kinds == {"text"} and len(self.inputs) == 1:
            return 'send JSON {"texts": [...]}'
        if kinds and kinds <= {"numeric", "text"}:
            return f'send JSON {{"records": [{{...}}]}} with features {", ".join(self.inputs)}'
        return f"see GET /v1/models/{self.model} for its inputs ({self.describe()})"

    def _only(self, sent: str, wanted: type[_Input] | tuple[type[_Input], ...]) -> list[Any]:
        """The inputs ``sent`` fills (one, or every feature for records), or the error that says why not."""
        matching = [i for i in self.inputs.values() if isinstance(i, wanted)]
        others = [i for i in self.inputs.values() if not isinstance(i, wanted)]
        odd = [i for i in others if isinstance(i, OtherInput)]
        if not matching and not others:
            raise BadRequest(f"model {self.model!r} declares no inputs the gateway can build")
        if not matching and len(odd) < len(others):  # the model takes another kind: say which
            error = UnsupportedMediaType if sent == "images" else BadRequest
            raise error(f"model {self.model!r} does not take {sent}; {self.hint()}")
        if odd:
            raise InputsNotMappable(self.model, sent, self.describe(), f"{odd[0].name}: {odd[0].why}")
        if others:
            why = f"it also takes {others[0].kind} input {others[0].name!r}"
            raise InputsNotMappable(self.model, sent, self.describe(), why)
        if sent != "records" and len(matching) > 1:
            names = ", ".join(i.name for i in matching)
            why = f"it takes {len(matching)} {matching[0].kind} inputs ({names}); send records naming each"
            raise InputsNotMappable(self.model, sent, self.describe(), why)
        return matching

    def for_images(self) -> ImageInput:
        """The one image input that uploaded files become, or the error that says what to send."""
        found: ImageInput = self._only("images", ImageInput)[0]
        return found

    def for_texts(self) -> TextInput:
        found: TextInput = self._only("texts", TextInput)[0]
        return found

    def for_records(self) -> dict[str, NumericInput | TextInput]:
        """The features records fill: numeric inputs and string ones (a category, a short text)."""
        return {i.name: i for i in self._only("records", (NumericInput, TextInput))}
