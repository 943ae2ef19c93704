"""SavedModel warm-up: replay ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of ``PredictionLog``)
against a freshly loaded version before it serves, as TF Serving's ``saved_model_warmup_util.cc`` does.

Predict, Classify, Regress and MultiInference records are replayed ``num_request_iterations`` times (at least
once); more than 1000 records, an unreadable file or a failing request fail the load.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelserver.errors import InvalidArgument, ServingError
from modelserver.inference import (
    CLASSIFY_METHOD,
    REGRESS_METHOD,
    classification_result,
    example_signature,
    regression_result,
    serialized_examples,
)
from modelserver.servable import Servable, check_inputs
from modelserver.tensors import to_ndarray
from modelserver.tfrecord import TooManyRecords, read_records
from tfs_protos.tensorflow_serving.apis import prediction_log_pb2

__all__ = ["MAX_WARMUP_RECORDS", "WARMUP_FILE", "WarmupOptions", "replay_warmup"]

MAX_WARMUP_RECORDS = 1000  # WarmupConsts::kMaxNumRecords
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"


@dataclass(frozen=True)
class WarmupOptions:
    enabled: bool = True
    num_request_iterations: int = 0
    method_name_check: bool = False


def _replay_examples(
    servable: Servable, spec_signature: str, request_input, method: str, check: bool
) -> None:  # type: ignore[no-untyped-def]
    signature = example_signature(servable, spec_signature, method, method_name_check=check)
    examples = serialized_examples(request_input)
    outputs = servable.run(signature.key, {signature.input_name: examples}, signature.outputs)
    if method == CLASSIFY_METHOD:
        classification_result(outputs, len(examples))
    else:
        regression_result(outputs, len(examples))


def _replay(servable: Servable, record: prediction_log_pb2.PredictionLog, options: WarmupOptions) -> None:
    kind = record.WhichOneof("log_type")
    check = options.method_name_check
    if kind == "predict_log":
        request = record.predict_log.request
        signature_name = request.model_spec.signature_name
        inputs = {name: to_ndarray(proto, name) for name, proto in request.inputs.items()}
        check_inputs(signature_name or "serving_default", servable.signature(signature_name), inputs)
        servable.check_output_filter(signature_name, request.output_filter)
        servable.run(signature_name, inputs, tuple(request.output_filter))
    elif kind == "classify_log":
        request = record.classify_log.request
        _replay_examples(servable, request.model_spec.signature_name, request.input, CLASSIFY_METHOD, check)
    elif kind == "regress_log":
        request = record.regress_log.request
        _replay_examples(servable, request.model_spec.signature_name, request.input, REGRESS_METHOD, check)
    elif kind == "multi_inference_log":
        request = record.multi_inference_log.request
        for task in request.tasks:
            _replay_examples(servable, task.model_spec.signature_name, request.input, task.method_name, check)
    else:
        raise InvalidArgument(f"Unsupported log_type for warmup: {kind}")


def replay_warmup(servable: Servable, options: WarmupOptions) -> int:
    """Replay the version's warm-up file if it has one; return the number of requests run."""
    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return 0
    try:
        records = [
            prediction_log_pb2.PredictionLog.FromString(raw)
            for raw in read_records(path, max_records=MAX_WARMUP_RECORDS)
        ]
    except TooManyRecords:
        raise InvalidArgument(
            f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
        ) from None
    except Exception as exc:
        raise InvalidArgument(f"Failed to read warmup requests from {path}: {exc}") from None
    iterations = max(1, options.num_request_iterations)
    for index, record in enumerate(records):
        for _ in range(iterations):
            try:
                _replay(servable, record, options)
            except ServingError as exc:
                raise ServingError(
                    f"Warmup request {index} in {path} failed: {exc.message}", code=exc.code
                ) from None
    return len(records) * iterations
