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

Fallback: a model without a ``contract`` signature (any SavedModel served by TF Serving) still works: the
contract is derived from ``serving_default`` - a float input of shape ``[-1,H,W,C]`` is an image scaled to
[0, 1], a string input is text, several ``[-1]`` numeric inputs are tabular features - and labels are class
indices.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import grpc

from gateway.errors import ModelNotFound, UpstreamError
from gateway.upstream import DEFAULT_SIGNATURE
from gateway.upstream.client import ModelClient
from gateway.upstream.tensors import dtype_name, to_list
from tfs_protos.tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

__all__ = ["ContractStore", "ModelInfo", "SignatureInfo", "TensorSpec", "derive_contract"]

RESOLVE_TTL_SECONDS = 2.0
CONTRACT_SIGNATURE = "contract"


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
    """One model version as the gateway sees it."""

    name: str
    version: int
    signatures: dict[str, SignatureInfo]
    contract: dict[str, Any]
    from_signature: bool  # True when read from the ``contract`` signature, False when derived
    labels: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.contract.get("task", "unknown"))

    @property
    def inputs(self) -> dict[str, dict[str, Any]]:
        return dict(self.contract.get("inputs", {}))

    def predict_signature(self) -> str:
        return str(self.contract.get("predict", {}).get("signature", DEFAULT_SIGNATURE))

    def image_input(self) -> tuple[str, dict[str, Any]] | None:
        for name, spec in self.inputs.items():
            if spec.get("kind") == "image":
                return name, spec
        return None

    def text_input(self) -> tuple[str, dict[str, Any]] | None:
        for name, spec in self.inputs.items():
            if spec.get("kind") == "text":
                return name, spec
        return None

    def numeric_inputs(self) -> dict[str, dict[str, Any]]:
        return {name: spec for name, spec in self.inputs.items() if spec.get("kind") == "numeric"}


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


def derive_contract(name: str, signatures: dict[str, SignatureInfo]) -> dict[str, Any]:
    """A contract derived from the signatures alone (models exported without a ``contract`` signature)."""
    default = signatures.get(DEFAULT_SIGNATURE)
    inputs: dict[str, Any] = {}
    task = "unknown"
    if default is not None:
        for key, spec in default.inputs.items():
            shape = spec.shape or []
            if spec.dtype == "string":
                inputs[key] = {"dtype": "string", "shape": shape, "kind": "text"}
                task = "text_classification"
            elif len(shape) == 4 and spec.dtype.startswith("float"):
                inputs[key] = {
                    "dtype": spec.dtype,
                    "shape": shape,
                    "kind": "image",
                    "height": shape[1],
                    "width": shape[2],
                    "channels": shape[3],
                    "range": [0.0, 1.0],
                }
                task = "image_classification"
            elif len(shape) <= 1:
                inputs[key] = {"dtype": spec.dtype, "shape": shape, "kind": "numeric", "missing": "NaN"}
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
            "signature": DEFAULT_SIGNATURE,
            "outputs": sorted(default.outputs) if default is not None else [],
        },
    }
    if "classify" in signatures:
        contract["classify"] = {"signature": "classify"}
    if "regress" in signatures:
        contract["regress"] = {"signature": "regress"}
    return contract


class ContractStore:
    """Looks up :class:`ModelInfo` per (model, version), cached as the module docstring says."""

    def __init__(self, client: ModelClient, cache_size: int) -> None:
        self._client = client
        self._size = cache_size
        self._infos: OrderedDict[tuple[str, int], ModelInfo] = OrderedDict()
        self._resolved: dict[tuple[str, int | None, str | None], tuple[float, int]] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    def forget(self, model: str) -> None:
        """Drop version resolutions of ``model`` (after an admin change)."""
        for key in [k for k in self._resolved if k[0] == model]:
            del self._resolved[key]

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
        from_signature = contract is not None
        if contract is None:
            contract = derive_contract(model, signatures)
        labels = [str(x) for x in contract.get("labels") or []]
        return ModelInfo(model, version, signatures, contract, from_signature, labels)
