"""Request bodies and replies of the gateway's HTTP API (pydantic models; they make the OpenAPI schema).

A JSON body is bounded before pydantic sees it (``gateway.bounds``: ``json_value_bound`` before parsing,
``check_inputs`` after); ``parse_inputs`` applies both, then the body models.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from gateway.bounds import MAX_RECORD_FIELDS, check_inputs, json_value_bound, max_json_values
from gateway.errors import BadRequest

__all__ = [
    "MAX_RECORD_FIELDS",
    "AdminReply",
    "ClassPrediction",
    "ClassifyReply",
    "ErrorBody",
    "ErrorDetail",
    "ExplainReply",
    "Explanation",
    "FeatureContribution",
    "Health",
    "LabelBody",
    "LabelScore",
    "ModelCard",
    "ModelDetail",
    "ModelList",
    "ModelSummary",
    "PredictReply",
    "PromoteBody",
    "Readiness",
    "RecordsBody",
    "RegressPrediction",
    "RegressReply",
    "SignatureDetail",
    "TensorDetail",
    "TextsBody",
    "TokenWeight",
    "VersionStatus",
    "check_inputs",
    "json_value_bound",
    "max_json_values",
    "parse_inputs",
]


def parse_inputs(raw: bytes, max_items: int) -> TextsBody | RecordsBody:
    """A ``{"texts": [...]}`` or ``{"records": [...]}`` body of at most ``max_items`` items, or a
    :class:`BadRequest` naming its first problem - found before anything is built per value."""
    values = max_json_values(max_items)
    if json_value_bound(raw, values) > values:  # before parsing builds them all
        raise BadRequest(
            f"JSON body holds too many values; send at most {max_items} texts or records "
            f"of at most {MAX_RECORD_FIELDS} features"
        )
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # the stdlib parser recurses per nesting level
        raise BadRequest("body is not valid JSON: nested too deeply; send a flat object") from None
    except ValueError as exc:  # an integer literal over Python's digit limit
        raise BadRequest(f"body is not valid JSON: {str(exc)[:120]}; send numbers as decimals") from None
    if not isinstance(body, dict) or len(body.keys() & {"texts", "records"}) != 1:
        raise BadRequest(
            'send JSON {"texts": [...]} for text models or {"records": [...]} for tabular models'
        )
    check_inputs(body, max_items)  # the first wrong value, before pydantic builds every error
    try:
        return TextsBody.model_validate(body) if "texts" in body else RecordsBody.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadRequest(f"wrong JSON shape at {where}: {first.get('msg')}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextsBody(_Strict):
    """Text models: one prediction per text."""

    texts: list[str] = Field(..., description="raw UTF-8 texts", examples=[["Free entry! Text WIN to 80086"]])


Scalar = StrictFloat | StrictInt | StrictStr


class RecordsBody(_Strict):
    """Tabular models: one prediction per record; a missing feature or null means unknown. A string feature (a
    category) is text; a feature the model takes as a vector (input ``[-1, K]``) is a list of K values."""

    # Strict: "37.88" or true is not a number (lax pydantic would take them as 37.88 and 1.0); which type a
    # feature needs is the model's contract's business (gateway.preprocess.tabular).
    records: list[dict[str, Scalar | list[Scalar | None] | None]] = Field(
        ..., examples=[[{"longitude": -122.23, "latitude": 37.88, "median_income": 8.3}]]
    )


class ErrorDetail(BaseModel):
    code: str = Field(..., description="machine-readable kind, e.g. model_not_found, upstream_unavailable")
    message: str = Field(..., description="what went wrong and what to fix")


class ErrorBody(BaseModel):
    error: ErrorDetail


class _Answered(BaseModel):
    model: str = Field(..., description="the model that answered")
    version: int = Field(..., description="the model version that answered (from the model server's reply)")


class LabelScore(BaseModel):
    label: str
    score: float


class ClassPrediction(BaseModel):
    input: str = Field(..., description="the uploaded file name, or texts[i]")
    label: str = Field(..., description="the top label")
    score: float
    top: list[LabelScore] = Field(..., description="the k best labels, best first")


class ClassifyReply(_Answered):
    predictions: list[ClassPrediction]


class PredictReply(_Answered):
    signature: str
    predictions: list[dict[str, Any]] = Field(..., description="one object per input: output name -> values")


class RegressPrediction(BaseModel):
    input: str
    value: float


class RegressReply(_Answered):
    unit: str | None = None
    predictions: list[RegressPrediction]


class TokenWeight(BaseModel):
    token: str
    weight: float = Field(..., description="the token's share of score - baseline_score")


class FeatureContribution(BaseModel):
    feature: str
    value: float | None = Field(..., description="the value sent (null: unknown, explained as imputed)")
    baseline: float | None = Field(
        default=None, description="the feature's baseline value (e.g. its training mean)"
    )
    contribution: float = Field(..., description="in the output's unit; all of them sum to score - baseline")


class Explanation(BaseModel):
    input: str = Field(..., description="the uploaded file name, or texts[i] / records[i]")
    class_id: int | None = Field(default=None, description="the class explained (null for a regressor)")
    label: str | None = Field(default=None, description="its label")
    score: float = Field(..., description="the explained output at the input")
    baseline_score: float = Field(..., description="the explained output at the baseline")
    total: float = Field(..., description="the sum of the attributions (close to score - baseline_score)")
    attributions: list[Any] | None = Field(
        default=None, description="images: one per pixel and channel, [h][w][c]"
    )
    heatmap: str | None = Field(
        default=None,
        description="images: base64 PNG of the attributions as a transparent layer (red +, blue -)",
    )
    tokens: list[TokenWeight] | None = Field(default=None, description="texts: the model's tokens in order")
    features: list[FeatureContribution] | None = Field(default=None, description="records: one per feature")


class ExplainReply(_Answered):
    signature: str
    method: str = Field(..., description="integrated_gradients")
    baseline: str = Field(..., description="what the attributions are measured from, e.g. 'black image'")
    steps: int
    unit: str | None = Field(default=None, description="the unit of score and contributions (regressors)")
    predictions: list[Explanation]


class VersionStatus(BaseModel):
    version: int
    state: str = Field(..., description="TF Serving state: START, LOADING, AVAILABLE, UNLOADING, END")
    error: str | None = Field(
        default=None, description="why the version failed (e.g. to load); null while it has no error"
    )


class ModelCard(BaseModel):
    """``model_card.json`` of one version, as the export published it (docs/architecture.md). The fields below
    are the documented ones; any other field of the file is passed through unchanged."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    version: int | None = None
    created: str | None = Field(default=None, description="ISO 8601")
    task: str | None = None
    data: dict[str, Any] | None = Field(default=None, description="source, files with sha256, split sizes")
    metrics: dict[str, Any] | None = Field(
        default=None, description="test metrics and their baselines (e.g. accuracy, baseline_accuracy)"
    )
    parameters: Any = Field(default=None, description="the model's parameter count")
    sizes: dict[str, Any] | None = Field(default=None, description="bytes: saved_model.pb, variables, ...")
    signatures: dict[str, Any] | None = Field(default=None, description="key -> method, inputs, outputs")
    contract: dict[str, Any] | None = Field(default=None, description="the input contract")
    training: dict[str, Any] | None = Field(default=None, description="epochs, seconds, per-epoch history")
    curves: list[str] | None = Field(
        default=None, description="figures, served at /v1/models/{name}/versions/{version}/curves.png"
    )
    labels: list[str] | None = None
    frozen_graph: dict[str, Any] | None = None
    warmup: dict[str, Any] | None = None


class ReplicaStatus(BaseModel):
    id: str = Field(..., description="stable name of the replica (a hash of its private address)")
    reachable: bool
    versions: list[VersionStatus]
    error: str | None = None
    answers: int | None = Field(
        default=None, description="measured: the version that answered a request naming no version"
    )


class AdminReplicaStatus(ReplicaStatus):
    address: str = Field(..., description="the replica's gRPC address (admin replies only)")


class CanaryState(BaseModel):
    version: int = Field(..., description="the candidate")
    stable: int
    weight: float = Field(..., description="percent of requests the candidate answers")
    shadow: float = Field(..., description="percent of stable requests mirrored to the candidate")
    status: str = Field(
        ...,
        description="starting (its version loading, no traffic yet), running, or rolled_back (automatically; "
        "the reason says why)",
    )
    reason: str | None = None
    window: dict[str, float] | None = Field(
        default=None,
        description="this gateway's sliding window: requests, error rates, p99, clients and latency per row",
    )


class ModelSummary(BaseModel):
    name: str
    versions: list[VersionStatus] = Field(..., description="the versions of the first replica that answered")
    pinned: int | None = None
    labels: dict[str, int] = {}
    answers: int | None = Field(
        default=None,
        description="measured on every replica: the version answering requests that name no version "
        "(null when none answered or they differ; each replica's own is in replicas)",
    )
    error: str | None = Field(default=None, description="why the model server could not be asked")
    replicas: list[ReplicaStatus] = Field(default=[], description="what each replica serves")
    converged: bool = Field(default=False, description="every replica answers, serving the desired versions")
    generation: int | None = Field(default=None, description="generation of the desired state")
    desired_error: str | None = Field(
        default=None, description="why the models.config was refused (the last good state keeps serving)"
    )
    canary: CanaryState | None = None
    events: list[dict[str, Any]] = Field(default=[], description="recent version events, newest last")


class ModelList(BaseModel):
    models: list[ModelSummary]


class TensorDetail(BaseModel):
    dtype: str
    shape: list[int] | None


class SignatureDetail(BaseModel):
    method: str
    inputs: dict[str, TensorDetail]
    outputs: dict[str, TensorDetail]


class ModelDetail(_Answered):
    task: str
    labels: list[str]
    inputs: dict[str, dict[str, Any]] = Field(..., description="the input contract, per input")
    signatures: dict[str, SignatureDetail]
    contract: dict[str, Any]
    contract_source: str = Field(
        ...,
        description="'signature' (the model's contract signature), 'card' (its model card: a TF Lite version)"
        " or 'derived' (metadata)",
    )
    versions: list[VersionStatus]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str] = Field(..., description="model -> 'ready' or why not")


class PromoteBody(_Strict):
    version: int = Field(..., ge=1, le=2**63 - 1)


class AddModelBody(_Strict):
    base_path: str = Field(
        ...,
        max_length=4096,
        description="the model's folder (holding 1/, 2/, ...) as the model servers see it, under the model roots",
    )
    model_version_policy: dict[str, Any] | None = Field(
        None,
        description='TF Serving\'s policy as JSON: {"latest": {"num_versions": 1}} (default), {"all": {}}, '
        '{"specific": {"versions": [1, 2]}}',
    )
    config_file: str | None = Field(
        None,
        max_length=255,
        description="which models.config (file name) gets it, i.e. which servers serve it; default the first",
    )


class RemovedReplica(BaseModel):
    id: str
    address: str
    unloaded: bool
    error: str | None = None


class RemovedReply(BaseModel):
    model: str
    removed: bool = True
    generation: int
    replicas: list[RemovedReplica]


class LabelBody(_Strict):
    version: int = Field(..., ge=1, le=2**63 - 1)


class CanaryBody(_Strict):
    version: int = Field(..., ge=1, le=2**63 - 1, description="the candidate version")
    weight: float = Field(..., ge=0, le=100, description="percent of requests it answers (0-100)")
    shadow: float = Field(0.0, ge=0, le=100, description="percent of stable requests mirrored to it (0-100)")


class AdminReply(BaseModel):
    model: str
    pinned: int | None
    labels: dict[str, int]
    history: list[int] = Field(..., description="versions that served before, newest last (rollback targets)")
    seen: list[int] = Field(..., description="versions on disk or served by a replica")
    versions: list[VersionStatus]
    generation: int | None = Field(
        default=None, description="the generation this change wrote (the file's own for a plain GET)"
    )
    converged: bool = False
    answers: int | None = Field(default=None, description="measured: see ModelSummary.answers")
    unconfirmed: list[str] = Field(
        default=[],
        description="ids of the replicas that did not confirm this change within their deadline (hung, down "
        "or partitioned); they converge later from the models.config",
    )
    replicas: list[AdminReplicaStatus] = []
    canary: CanaryState | None = None
    events: list[dict[str, Any]] = []
