"""The input contract of a model version: what the gateway must feed it and how to read its answers.

Source of truth (docs/architecture.md): ``GetModelMetadata`` gives the signatures (input names, dtypes,
shapes); ``Predict`` on the no-input signature ``contract`` gives the JSON contract written by the export
(task,
labels, scaling range, image size/channels, feature descriptions). Both are standard TF Serving calls, so this
works against the official server too.

Caching: a contract is immutable per (model, version) - versions are never overwritten - so it is cached in an
LRU of ``GATEWAY_CONTRACT_CACHE_SIZE`` entries. Which version "latest" or a label points to changes, so that
resolution is cached only for ``RESOLVE_TTL_SECONDS``; replies always name the version from the model server's
own reply, never from this cache. With several replicas, the ``contract`` call goes to a replica that serves
the version the metadata named: during a rollout one replica may serve a new version before the others.

Without a ``contract`` signature: a TF Lite version (``--prefer_tflite_model``) serves only the SignatureDefs
written into its ``model.tflite``, on TF Serving's TfLiteSession as on ours, and the export writes
``serving_default`` alone (the contract has no TF Lite form). Such a version takes the contract from its model
card (``card``: the ``contract`` section of ``model_card.json``, read from the model repository when the
gateway can read it, gateway.rollout.repository), provided its predict signature is served with exactly the
inputs it names. Otherwise (any SavedModel served by TF Serving, or no readable card) the contract is derived
from ``serving_default`` (else the first predict signature with inputs) - a float32
``[-1,H,W,C]`` input (C = 1 or 3) is an image scaled to [0, 1], a uint8 one takes the pixel levels, a string
``[-1]`` or ``[-1,1]`` input is text, float32 ``[-1]`` / ``[-1,1]`` inputs are tabular features, anything else
is ``kind: other`` (with why) - and labels are class indices. The typed form and the rule that maps a request
onto the inputs: ``gateway.upstream.spec``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc

from gateway.errors import ModelNotFound, UpstreamError
from gateway.upstream import DEFAULT_SIGNATURE
from gateway.upstream.client import ModelClient
from gateway.upstream.spec import FEATURE_DTYPES, ROW_SHAPES, Contract
from gateway.upstream.tensors import dtype_name, to_list
from tfs_protos.tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

__all__ = [
    "CardReader",
    "ContractSource",
    "ContractStore",
    "ModelInfo",
    "SignatureInfo",
    "TensorSpec",
    "card_fits",
    "derive_contract",
]

RESOLVE_TTL_SECONDS = 2.0
CONTRACT_SIGNATURE = "contract"
# Where a version's contract came from: its ``contract`` signature, its model card, or its signatures alone.
ContractSource = Literal["signature", "card", "derived"]
# (model, version) -> the ``contract`` section of that version's model card, or None (blocking file I/O).
CardReader = Callable[[str, int], "dict[str, Any] | None"]


@dataclass(frozen=True)
class TensorSpec:
    dtype: str  # "float32", "string", ...
    shape: list[int] | None  # None = unknown rank


@dataclass(frozen=True)
class SignatureInfo:
    method: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


@dataclass(frozen=True)
class ModelInfo:
    """One model version as the gateway sees it: ``contract`` is the JSON, ``spec`` the same typed."""

    name: str
    version: int
    signatures: dict[str, SignatureInfo]
    contract: dict[str, Any]
    source: ContractSource
    labels: list[str] = field(default_factory=list)

    @functools.cached_property
    def spec(self) -> Contract:
        return Contract.parse(self.name, self.contract)

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def inputs(self) -> dict[str, dict[str, Any]]:
        return dict(self.contract.get("inputs", {}))

    def predict_signature(self) -> str:
        return self.spec.predict_signature

    def image_input(self) -> tuple[str, dict[str, Any]] | None:
        """The image input's name and contract entry, when the model takes images (``:explain`` draws on it)."""
        for name, entry in self.inputs.items():
            if isinstance(entry, dict) and entry.get("kind") == "image":
                return name, entry
        return None


def _specs(infos: Any) -> dict[str, TensorSpec]:
    out = {}
    for key in sorted(infos):
        info = infos[key]
        shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
        out[key] = TensorSpec(dtype_name(info.dtype), shape)
    return out


def parse_signatures(reply: get_model_metadata_pb2.GetModelMetadataResponse) -> dict[str, SignatureInfo]:
    if "signature_def" not in reply.metadata:
        return {}
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    reply.metadata["signature_def"].Unpack(sig_map)
    return {
        key: SignatureInfo(sig.method_name, _specs(sig.inputs), _specs(sig.outputs))
        for key, sig in sorted(sig_map.signature_def.items())
    }


def _is_predict(sig: SignatureInfo) -> bool:
    return not sig.method or sig.method.endswith("/predict")


def _default_signature(signatures: dict[str, SignatureInfo]) -> str | None:
    """``serving_default`` when it is a predict signature, else the first predict signature with inputs (TF1
    exports name theirs freely; an Estimator's ``serving_default`` is often a classify signature), else
    ``serving_default`` whatever it is."""
    default = signatures.get(DEFAULT_SIGNATURE)
    if default is not None and _is_predict(default):
        return DEFAULT_SIGNATURE
    for key, sig in signatures.items():
        if key != CONTRACT_SIGNATURE and sig.inputs and _is_predict(sig):
            return key
    return DEFAULT_SIGNATURE if default is not None else None


def derive_input(spec: TensorSpec) -> dict[str, Any]:
    """One input's contract entry from its dtype and shape alone (the module docstring's rules)."""
    shape = spec.shape
    entry: dict[str, Any] = {"dtype": spec.dtype, "shape": shape}
    rows = shape is None or tuple(shape) in ROW_SHAPES
    if spec.dtype == "string" and rows:
        return {**entry, "kind": "text"}
    vector = shape is not None and len(shape) == 2 and shape[0] == -1 and shape[1] > 1
    if spec.dtype in FEATURE_DTYPES and (rows or vector):
        return {**entry, "kind": "numeric", **({"missing": "NaN"} if spec.dtype.startswith("float") else {})}
    if shape is not None and len(shape) == 4 and spec.dtype in ("float32", "uint8"):
        height, width, channels = shape[1:]
        if height > 0 and width > 0 and channels in (1, 3):
            levels = [0.0, 255.0] if spec.dtype == "uint8" else [0.0, 1.0]
            size = {"height": height, "width": width, "channels": channels}
            return {**entry, "kind": "image", **size, "range": levels}
        why = f"image size {height}x{width}x{channels}: the gateway needs a fixed size and 1 or 3 channels"
        return {**entry, "kind": "other", "why": why}
    why = (
        f"{spec.dtype} {shape if shape is not None else '?'} is not an image (float32 or uint8 [-1,H,W,1|3]), "
        "a text (string [-1] or [-1,1]) or a record feature (float32, float64, int32 or int64 [-1], [-1,1] "
        "or [-1,K])"
    )
    return {**entry, "kind": "other", "why": why}


def derive_contract(name: str, signatures: dict[str, SignatureInfo]) -> dict[str, Any]:
    """A contract derived from the signatures alone (models exported without a ``contract`` signature)."""
    key = _default_signature(signatures)
    default = signatures.get(key) if key is not None else None
    inputs = {k: derive_input(spec) for k, spec in default.inputs.items()} if default is not None else {}
    if default is not None and not _is_predict(default):  # classify / regress: serialized tf.Examples
        why = (
            f"{default.method.rsplit('/', 1)[-1]} signature {key!r} takes serialized tf.Examples whose features "
            "its signature does not name"
        )
        inputs = {k: {**entry, "kind": "other", "why": why} for k, entry in inputs.items()}
    kinds = {entry["kind"] for entry in inputs.values()}
    task = "unknown"
    if kinds == {"image"} and len(inputs) == 1:
        task = "image_classification"
    elif kinds == {"text"} and len(inputs) == 1:
        task = "text_classification"
    elif kinds == {"numeric"}:
        task = "regression"
    if "classify" in signatures and task == "unknown":
        task = "classification"
    if "regress" in signatures and "classify" not in signatures and inputs:
        task = "regression"
    contract: dict[str, Any] = {
        "model": name,
        "task": task,
        "labels": [],
        "inputs": inputs,
        "predict": {
            "signature": key or DEFAULT_SIGNATURE,
            "outputs": sorted(default.outputs) if default is not None else [],
        },
    }
    if "classify" in signatures:
        contract["classify"] = {"signature": "classify"}
    if "regress" in signatures:
        contract["regress"] = {"signature": "regress"}
    return contract


def card_fits(contract: dict[str, Any], signatures: dict[str, SignatureInfo]) -> bool:
    """Whether a model card's contract describes what the version serves: its predict signature is served and
    takes exactly the inputs the contract names, each of the dtype it says."""
    predict = contract.get("predict")
    key = predict.get("signature") if isinstance(predict, dict) else None
    signature = signatures.get(str(key or DEFAULT_SIGNATURE))
    inputs = contract.get("inputs")
    if signature is None or not isinstance(inputs, dict) or set(inputs) != set(signature.inputs):
        return False
    return all(
        not isinstance(entry, dict) or entry.get("dtype") in (None, signature.inputs[name].dtype)
        for name, entry in inputs.items()
    )


class ContractStore:
    """Looks up :class:`ModelInfo` per (model, version), cached as the module docstring says."""

    def __init__(self, client: ModelClient, cache_size: int, card: CardReader | None = None) -> None:
        self._client = client
        self._size = cache_size
        self._card = card
        self._infos: OrderedDict[tuple[str, int], ModelInfo] = OrderedDict()
        self._resolved: dict[tuple[str, int | None, str | None], tuple[float, int]] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    def forget(self, model: str) -> None:
        """Drop version resolutions of ``model`` (after an admin change)."""
        for key in [k for k in self._resolved if k[0] == model]:
            del self._resolved[key]

    def drop(self, model: str) -> None:
        """Forget everything about ``model`` (it was removed, or added anew: its versions may differ)."""
        self.forget(model)
        for key in [k for k in self._infos if k[0] == model]:
            del self._infos[key]

    async def get(self, model: str, *, version: int | None = None, label: str | None = None) -> ModelInfo:
        try:
            return await self._get(model, version, label)
        except UpstreamError as exc:
            # latest (or a label) named a version that was unloaded before its contract was read - a hot swap
            # in between: ask once more what it names now
            if exc.code is not grpc.StatusCode.NOT_FOUND or version is not None:
                raise
            self._resolved.pop((model, version, label), None)
            return await self._get(model, version, label)

    async def _get(self, model: str, version: int | None, label: str | None) -> ModelInfo:
        key = (model, version, label)
        now = time.monotonic()
        hit = self._resolved.get(key)
        if hit is not None and now - hit[0] < RESOLVE_TTL_SECONDS and (model, hit[1]) in self._infos:
            self._infos.move_to_end((model, hit[1]))
            return self._infos[(model, hit[1])]
        try:
            reply = await self._client.metadata(model, version=version, label=label)
        except UpstreamError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:
                raise ModelNotFound(model, version, label) from None
            if exc.code is grpc.StatusCode.INVALID_ARGUMENT and label is not None:
                raise ModelNotFound(model, label=label) from None
            raise
        resolved = reply.model_spec.version.value if reply.model_spec.HasField("version") else (version or 0)
        self._resolved[key] = (now, resolved)
        # drop expired resolutions of labels and versions that came and went
        if len(self._resolved) > 4 * self._size:
            for stale in [k for k, (at, _) in self._resolved.items() if now - at >= RESOLVE_TTL_SECONDS]:
                del self._resolved[stale]
        cached = self._infos.get((model, resolved))
        if cached is not None:
            return cached
        lock = self._locks.setdefault((model, resolved), asyncio.Lock())
        async with lock:
            cached = self._infos.get((model, resolved))
            if cached is None:
                cached = await self._load(model, resolved, parse_signatures(reply))
                self._infos[(model, resolved)] = cached
                while len(self._infos) > self._size:
                    self._infos.popitem(last=False)
            self._locks.pop((model, resolved), None)
        return cached

    async def _contract_reply(self, model: str, version: int) -> predict_pb2.PredictResponse:
        """The contract signature's answer for ``version``. Replicas load a new version each at its own pace
        (each polls the model repository), so the replica that named it in the metadata may be the only one
        serving it yet: on NOT_FOUND, each replica is asked in turn before the error stands."""
        try:
            return await self._client.predict(
                model, {}, version=version or None, signature=CONTRACT_SIGNATURE
            )
        except UpstreamError as exc:
            if exc.code is not grpc.StatusCode.NOT_FOUND or not version:
                raise
            missing = exc
        for address in await self._client.replicas(model):
            try:
                return await self._client.predict(
                    model, {}, version=version, signature=CONTRACT_SIGNATURE, address=address
                )
            except UpstreamError as exc:
                if exc.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    raise
        raise missing

    async def _load(self, model: str, version: int, signatures: dict[str, SignatureInfo]) -> ModelInfo:
        contract: dict[str, Any] | None = None
        if CONTRACT_SIGNATURE in signatures:
            reply = await self._contract_reply(model, version)
            tensor = reply.outputs.get("contract") or next(iter(reply.outputs.values()), None)
            if tensor is not None:
                values = to_list(tensor)
                try:
                    parsed = json.loads(str(values[0])) if values else None
                except json.JSONDecodeError:
                    parsed = None
                contract = parsed if isinstance(parsed, dict) else None
        source: ContractSource = "signature"
        if contract is None and self._card is not None:
            contract = await asyncio.to_thread(self._card, model, version)
            contract = contract if contract is not None and card_fits(contract, signatures) else None
            source = "card"
        if contract is None:
            contract, source = derive_contract(model, signatures), "derived"
        labels = [str(x) for x in contract.get("labels") or []]
        return ModelInfo(model, version, signatures, contract, source, labels)
